/*
 * sealedCopy(path, name) → fd
 *
 * The program at `path` copied into a memfd named `name`, sealed against every change
 * (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), mode 0555, close-on-exec.
 *
 * Why: a host program that runs inside a container's pid namespace (the exec agent, and the
 * launcher that enters the container for it) can be reached from there as /proc/PID/exe, and
 * root of a privileged container is host root: a descriptor kept on that exe can be written
 * once nothing executes it, and whatever file it is changes for every container (runc's
 * CVE-2019-5736). Run from this copy instead, the exe is an anonymous file no one can change,
 * not even its creator, and that no other process of the host runs. The daemon makes one per
 * program and reuses it for every launch, so a launch copies nothing.
 *
 * Errors throw with errno's text and its name as `code` (ENOENT: no such program).
 */
#define _GNU_SOURCE
#include "sealed.h"
#include "errno-error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#define ALL_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* The copy, or -1 with errno and *what set. */
static int sealed_copy(const char *path, const char *name, const char **what) {
  int src = open(path, O_RDONLY | O_CLOEXEC);
  if (src < 0) return *what = "open", -1;
  struct stat st;
  int fd = -1, err = 0;
  if (fstat(src, &st) < 0) {
    *what = "stat", err = errno;
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    *what = "not a regular file:", err = EINVAL;
    goto out;
  }
  /* MFD_EXEC: executable even where vm.memfd_noexec makes memfds noexec by default (6.3+);
   * older kernels do not know the flag and make every memfd executable. */
  fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    *what = "memfd_create for", err = errno;
    goto out;
  }
  off_t copied = 0;
  for (;;) {
    ssize_t n = sendfile(fd, src, NULL, 1 << 30);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *what = "copy", err = errno;
      goto out;
    }
    if (n == 0) break;
    copied += n;
  }
  /* A program replaced while it was copied: refuse a torn copy (the caller tries again). */
  struct stat now;
  if (fstat(src, &now) < 0 || copied != st.st_size || now.st_size != st.st_size || now.st_mtim.tv_sec != st.st_mtim.tv_sec ||
      now.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
    *what = "changed while copied:", err = EAGAIN;
    goto out;
  }
  if (fchmod(fd, 0555) < 0) {
    *what = "chmod the copy of", err = errno;
    goto out;
  }
  if (fcntl(fd, F_ADD_SEALS, ALL_SEALS) < 0 || (fcntl(fd, F_GET_SEALS) & ALL_SEALS) != ALL_SEALS) {
    *what = "seal the copy of", err = errno ? errno : EINVAL;
    goto out;
  }
  close(src);
  return fd;
out:
  if (fd >= 0) close(fd);
  close(src);
  errno = err;
  return -1;
}

static napi_value SealedCopy(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_MAX], name[200];
  size_t len;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len >= sizeof path - 1 ||
      napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok || len >= sizeof name - 1) {
    napi_throw_type_error(env, NULL, "sealedCopy(path, name): path and name must be strings");
    return NULL;
  }
  const char *what = "open";
  errno = 0;
  int fd = sealed_copy(path, name, &what);
  if (fd < 0) return throw_errno(env, errno, what, path);
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

void register_sealed(napi_env env, napi_value exports) {
  napi_property_descriptor prop = {"sealedCopy", NULL, SealedCopy, NULL, NULL, NULL, napi_default, NULL};
  napi_define_properties(env, exports, 1, &prop);
}
