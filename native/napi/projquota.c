/*
 * Project quotas (XFS, ext4): the project id of a file and the limit and usage of a project,
 * by ioctl and quotactl rather than by chattr, xfs_quota or setquota (a process per call; the
 * usage of every instance is read for `lxc list`).
 *
 *   projectOf(path) → { id, inherit } | null      FS_IOC_FSGETXATTR; null: the filesystem keeps no project ids
 *   setProject(path, id, inherit) → boolean      FS_IOC_FSSETXATTR on a directory or regular file
 *                                                (false: another kind of file, left as it is)
 *   projectQuota(path, id) → { bytes, inodes, limit } | null
 *                                                Q_GETQUOTA of project `id` on the filesystem holding
 *                                                `path` (limit 0: none); null: quotas are off there
 *   setProjectLimit(path, id, bytes)             Q_SETQUOTA: hard block limit (0 lifts it)
 *
 * quotactl_fd (Linux 5.14) names the filesystem by an open directory, so no block device has
 * to be found. Paths are opened without following a final symlink. Errors throw with errno's
 * text and its name as `code`.
 */
#define _GNU_SOURCE
#include "projquota.h"
#include "errno-error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/quota.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif

/* The path argument `i`, refused when too long or holding a NUL. */
static bool path_arg(napi_env env, napi_value v, char *out, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok || len >= size - 1 || strlen(out) != len) {
    napi_throw_type_error(env, NULL, "project quotas: bad path argument");
    return false;
  }
  return true;
}

static bool u32_arg(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "project quotas: bad id argument");
    return false;
  }
  return true;
}

/*
 * The call's `n` arguments into argv (at most n), the first a path (into `path`, PATH_MAX
 * bytes) and the second a project id; false when they are fewer or bad (then with a TypeError
 * thrown, except when they are fewer).
 */
static bool path_id_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, char *path, uint32_t *id) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc >= n && path_arg(env, argv[0], path, PATH_MAX) && u32_arg(env, argv[1], id);
}

/* Errors that mean "this filesystem has no project ids" rather than a failure. */
static bool unsupported(int err) { return err == ENOTTY || err == EOPNOTSUPP || err == ENOSYS || err == EINVAL; }

/* Errors of quotactl that mean "no quotas here" (off, not built in, not this filesystem). */
static bool quotas_off(int err) { return err == ESRCH || err == ENOSYS || err == EOPNOTSUPP || err == ENOTTY || err == EINVAL; }

static napi_value ProjectOf(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[PATH_MAX];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !path_arg(env, argv[0], path, sizeof path)) return NULL;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  struct fsxattr fa;
  int r = ioctl(fd, FS_IOC_FSGETXATTR, &fa), err = errno;
  close(fd);
  napi_value out;
  if (r < 0) {
    if (unsupported(err)) {
      napi_get_null(env, &out);
      return out;
    }
    return throw_errno(env, err, "FS_IOC_FSGETXATTR", path);
  }
  napi_value id, inherit;
  napi_create_object(env, &out);
  napi_create_uint32(env, fa.fsx_projid, &id);
  napi_get_boolean(env, (fa.fsx_xflags & FS_XFLAG_PROJINHERIT) != 0, &inherit);
  napi_set_named_property(env, out, "id", id);
  napi_set_named_property(env, out, "inherit", inherit);
  return out;
}

static napi_value SetProject(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[PATH_MAX];
  uint32_t id;
  bool inherit = false;
  if (!path_id_args(env, info, 3, argv, path, &id)) return NULL;
  if (napi_get_value_bool(env, argv[2], &inherit) != napi_ok) {
    napi_throw_type_error(env, NULL, "setProject(path, id, inherit): bad arguments");
    return NULL;
  }
  napi_value out;
  /* O_NONBLOCK: a FIFO in the tree must not hang the daemon (it is skipped below anyway). */
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    /* A symlink (ELOOP) or a socket (ENXIO) holds no blocks worth counting. */
    if (errno == ELOOP || errno == ENXIO) {
      napi_get_boolean(env, false, &out);
      return out;
    }
    return throw_errno(env, errno, "open", path);
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
    close(fd);
    napi_get_boolean(env, false, &out);
    return out;
  }
  struct fsxattr fa;
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fa) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "FS_IOC_FSGETXATTR", path);
  }
  fa.fsx_projid = id;
  if (S_ISDIR(st.st_mode) && inherit) fa.fsx_xflags |= FS_XFLAG_PROJINHERIT;
  if (!inherit) fa.fsx_xflags &= ~FS_XFLAG_PROJINHERIT;
  int r = ioctl(fd, FS_IOC_FSSETXATTR, &fa), err = errno;
  close(fd);
  if (r < 0) return throw_errno(env, err, "FS_IOC_FSSETXATTR", path);
  napi_get_boolean(env, true, &out);
  return out;
}

static int open_dir(const char *path) { return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

static napi_value ProjectQuota(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX];
  uint32_t id;
  if (!path_id_args(env, info, 2, argv, path, &id)) return NULL;
  int fd = open_dir(path);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  struct if_dqblk q;
  memset(&q, 0, sizeof q);
  long r = syscall(SYS_quotactl_fd, fd, QCMD(Q_GETQUOTA, PRJQUOTA), id, &q);
  int err = errno;
  close(fd);
  napi_value out;
  if (r < 0 && err == ENOENT) memset(&q, 0, sizeof q); /* XFS: a project nothing was ever charged to */
  else if (r < 0) {
    if (quotas_off(err)) {
      napi_get_null(env, &out);
      return out;
    }
    return throw_errno(env, err, "quotactl Q_GETQUOTA", path);
  }
  napi_value bytes, inodes, limit;
  napi_create_object(env, &out);
  napi_create_double(env, (double)q.dqb_curspace, &bytes);
  napi_create_double(env, (double)q.dqb_curinodes, &inodes);
  /* Block limits are in quota blocks of 1 KiB (QIF_DQBLKSIZE). */
  napi_create_double(env, (double)q.dqb_bhardlimit * QIF_DQBLKSIZE, &limit);
  napi_set_named_property(env, out, "bytes", bytes);
  napi_set_named_property(env, out, "inodes", inodes);
  napi_set_named_property(env, out, "limit", limit);
  return out;
}

static napi_value SetProjectLimit(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[PATH_MAX];
  uint32_t id;
  double bytes;
  if (!path_id_args(env, info, 3, argv, path, &id)) return NULL;
  if (napi_get_value_double(env, argv[2], &bytes) != napi_ok || !(bytes >= 0)) {
    napi_throw_type_error(env, NULL, "setProjectLimit(path, id, bytes): bad arguments");
    return NULL;
  }
  int fd = open_dir(path);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  struct if_dqblk q;
  memset(&q, 0, sizeof q);
  /* Rounded up: a limit is never below what was asked. */
  q.dqb_bhardlimit = (uint64_t)((bytes + QIF_DQBLKSIZE - 1) / QIF_DQBLKSIZE);
  q.dqb_bsoftlimit = 0;
  q.dqb_valid = QIF_BLIMITS;
  long r = syscall(SYS_quotactl_fd, fd, QCMD(Q_SETQUOTA, PRJQUOTA), id, &q);
  int err = errno;
  close(fd);
  if (r < 0) return throw_errno(env, err, "quotactl Q_SETQUOTA", path);
  return NULL;
}

void register_projquota(napi_env env, napi_value exports) {
  napi_property_descriptor p[] = {
      {"projectOf", NULL, ProjectOf, NULL, NULL, NULL, napi_default, NULL},
      {"setProject", NULL, SetProject, NULL, NULL, NULL, napi_default, NULL},
      {"projectQuota", NULL, ProjectQuota, NULL, NULL, NULL, napi_default, NULL},
      {"setProjectLimit", NULL, SetProjectLimit, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof p / sizeof p[0], p);
}
