/* spawn.c: starting programs without forking the daemon (posix_spawn, exit watched on a thread). */
#pragma once
#include <node_api.h>

void register_spawn(napi_env env, napi_value exports);
