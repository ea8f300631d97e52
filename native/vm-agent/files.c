/*
 * The agent's file calls, with the same rules as the container helper (native/fileio): owner
 * and mode apply only to what a call creates, mkdir succeeds on an existing path, symlink on
 * an existing link with the same target, delete is unlink else rmdir (Go's os.Remove, which
 * LXD uses). Paths are the guest's own: the agent runs as the guest's root.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent.h"

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_dir(const char *path, struct sb *j) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR *d = fdopendir(fd);
  if (!d) { close(fd); return -1; }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) names = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  sb_printf(j, ",\"entries\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) sb_add(j, ",", 1);
    sb_json_string(j, names[i]);
    free(names[i]);
  }
  sb_add(j, "]", 1);
  free(names);
  return 0;
}

void file_stat(uint32_t chan, const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) return send_error(chan, errno, "lstat");
  struct sb j = {0};
  const char *type = S_ISDIR(st.st_mode) ? "directory" : S_ISLNK(st.st_mode) ? "symlink" : "file";
  int special = !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode));
  sb_printf(&j, "{\"type\":\"%s\",\"special\":%s,\"mode\":%u,\"uid\":%u,\"gid\":%u,\"size\":%lld,\"mtime\":%lld", type,
            special ? "true" : "false", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
            (long long)st.st_size, (long long)st.st_mtim.tv_sec);
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX + 1];
    ssize_t len = readlink(path, target, PATH_MAX);
    if (len < 0) { sb_free(&j); return send_error(chan, errno, "readlink"); }
    target[len] = 0;
    sb_printf(&j, ",\"target\":");
    sb_json_string(&j, target);
  } else if (S_ISDIR(st.st_mode) && list_dir(path, &j) < 0) {
    int err = errno;
    sb_free(&j);
    return send_error(chan, err, "open directory");
  }
  sb_add(&j, "}", 1);
  send_frame(chan, A_OK, j.d, j.len);
  sb_free(&j);
}

/* Owner and mode for something this call created; -1 leaves a field alone. */
static int settle(int fd, int64_t uid, int64_t gid, int64_t mode) {
  if ((uid >= 0 || gid >= 0) && fchown(fd, (uid_t)uid, (gid_t)gid) < 0) return -1;
  if (mode >= 0 && fchmod(fd, (mode_t)mode) < 0) return -1; /* after chown, which clears set-id bits */
  return 0;
}

void file_mkdir(uint32_t chan, const char *path, int64_t uid, int64_t gid, int64_t mode) {
  struct stat st;
  if (stat(path, &st) == 0) return send_frame(chan, A_OK, NULL, 0);
  if (mkdir(path, 0700) < 0) return send_error(chan, errno, "mkdir");
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return send_error(chan, errno, "open directory");
  int r = settle(fd, uid, gid, mode >= 0 ? mode : 0750); /* LXD's default for directories */
  int err = errno;
  close(fd);
  if (r < 0) return send_error(chan, err, "chown/chmod");
  send_frame(chan, A_OK, NULL, 0);
}

void file_symlink(uint32_t chan, const char *target, const char *path, int64_t uid, int64_t gid) {
  char cur[PATH_MAX + 1];
  ssize_t len = readlink(path, cur, PATH_MAX);
  if (len >= 0 && (cur[len] = 0, !strcmp(cur, target))) return send_frame(chan, A_OK, NULL, 0);
  if (symlink(target, path) < 0) return send_error(chan, errno, "symlink");
  if ((uid >= 0 || gid >= 0) && fchownat(AT_FDCWD, path, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0)
    return send_error(chan, errno, "chown");
  send_frame(chan, A_OK, NULL, 0);
}

void file_delete(uint32_t chan, const char *path) {
  if (unlink(path) == 0) return send_frame(chan, A_OK, NULL, 0);
  int unlink_err = errno;
  if (rmdir(path) == 0) return send_frame(chan, A_OK, NULL, 0);
  if (errno != ENOTDIR) return send_error(chan, errno, "rmdir");
  send_error(chan, unlink_err, "unlink");
}

int file_open_read(uint32_t chan, const char *path) {
  /* O_NONBLOCK: opening a FIFO must not hang; it is refused below anyway. */
  int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return send_error(chan, errno, "open"), -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    int err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    close(fd);
    return send_error(chan, err, "not a regular file"), -1;
  }
  struct sb j = {0};
  sb_printf(&j, "{\"size\":%lld}", (long long)st.st_size);
  send_frame(chan, A_OK, j.d, j.len);
  sb_free(&j);
  return fd;
}

int file_open_write(uint32_t chan, const char *path, int64_t uid, int64_t gid, int64_t mode, int append) {
  int created = 0, fd;
  const int base = O_WRONLY | O_NOCTTY | O_CLOEXEC;
  if (append) {
    fd = open(path, base | O_APPEND);
  } else {
    fd = open(path, base | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) created = 1;
    else if (errno == EEXIST && (fd = open(path, base | O_TRUNC)) < 0 && errno == ENOENT)
      fd = open(path, base | O_CREAT | O_TRUNC, 0644), created = 1; /* a dangling symlink: create its target */
  }
  if (fd < 0) return send_error(chan, errno, "open"), -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return send_error(chan, EINVAL, "not a regular file"), -1;
  }
  if (created && settle(fd, uid, gid, mode) < 0) {
    int err = errno;
    close(fd);
    return send_error(chan, err, "chown/chmod"), -1;
  }
  send_frame(chan, A_OK, NULL, 0);
  return fd;
}
