/*
 * openBeneath(dirFd, path, flags, mode = 0) → fd
 *
 * Opens `path` relative to the directory `dirFd` with openat2 and RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: the kernel refuses to leave the directory (an
 * absolute path or ".." climbing out: EXDEV) and to go through any symlink, the last component
 * included (ELOOP). The daemon reads and writes files that an image or a container made, as
 * host root; a path check in JavaScript followed by a plain open leaves a window and misses
 * links in the middle of the path, this does not. Node has no openat2, hence this.
 *
 * O_CLOEXEC and O_NOCTTY are always added; `mode` is used only with O_CREAT. Errors throw
 * with errno's text and its name as `code` (ELOOP, EXDEV, ENOENT, ENOSYS on kernels before 5.6).
 */
#define _GNU_SOURCE
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static napi_value fail(napi_env env, int err, const char *path) {
  char msg[PATH_MAX + 128];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "openat2 \"%s\": %s", path, strerror(err));
  napi_throw_error(env, name ? name : "EIO", msg);
  return NULL;
}

static napi_value OpenBeneath(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t dirfd, flags, mode = 0;
  char path[PATH_MAX];
  size_t len;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &dirfd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok || len >= sizeof path - 1 ||
      napi_get_value_int32(env, argv[2], &flags) != napi_ok || (argc >= 4 && napi_get_value_int32(env, argv[3], &mode) != napi_ok)) {
    napi_throw_type_error(env, NULL, "openBeneath(dirFd, path, flags, mode): bad arguments");
    return NULL;
  }
  /* A NUL inside the JavaScript string would silently cut the path short. */
  if (strlen(path) != len) {
    napi_throw_type_error(env, NULL, "openBeneath: the path contains a NUL byte");
    return NULL;
  }
  struct open_how how = {
      .flags = (uint64_t)(uint32_t)flags | O_CLOEXEC | O_NOCTTY,
      .mode = (flags & O_CREAT) ? (uint64_t)(mode & 07777) : 0,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  /* EAGAIN: a rename elsewhere raced the lookup (the kernel asks for a retry); EINTR: a signal. */
  for (int tries = 0;; tries++) {
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) {
      napi_value r;
      napi_create_int32(env, (int32_t)fd, &r);
      return r;
    }
    if ((errno == EAGAIN || errno == EINTR) && tries < 16) continue;
    return fail(env, errno, path);
  }
}

void register_beneath(napi_env env, napi_value exports) {
  napi_property_descriptor p = {"openBeneath", NULL, OpenBeneath, NULL, NULL, NULL, napi_default, NULL};
  napi_define_properties(env, exports, 1, &p);
}
