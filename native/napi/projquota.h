/* projquota.c: project ids of files, and limits and usage of projects (XFS, ext4 project quotas). */
#pragma once
#include <node_api.h>

void register_projquota(napi_env env, napi_value exports);
