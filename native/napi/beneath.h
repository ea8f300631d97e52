/* beneath.c: opening a file below a directory without following any link (openat2). */
#pragma once
#include <node_api.h>

void register_beneath(napi_env env, napi_value exports);
