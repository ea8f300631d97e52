/* sealed.c: a program copied into a sealed memfd, to run inside instances (CVE-2019-5736). */
#pragma once
#include <node_api.h>

void register_sealed(napi_env env, napi_value exports);
