/* errno-error.c: a failed system call thrown to JavaScript as an Error with errno's name as `code`. */
#pragma once
#include <node_api.h>

/* Throws `WHAT "PATH": strerror(err)` with code strerrorname_np(err) (EIO when it has no name); returns NULL, for the caller to return. */
napi_value throw_errno(napi_env env, int err, const char *what, const char *path);
