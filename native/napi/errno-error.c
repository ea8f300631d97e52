#define _GNU_SOURCE
#include "errno-error.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

napi_value throw_errno(napi_env env, int err, const char *what, const char *path) {
  char msg[PATH_MAX + 128];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s \"%s\": %s", what, path, strerror(err));
  napi_throw_error(env, name ? name : "EIO", msg);
  return NULL;
}
