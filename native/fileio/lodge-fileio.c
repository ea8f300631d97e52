/*
 * lodge-fileio: one file operation inside an instance's own view of its filesystem.
 *
 * Node cannot setns(2) or chroot(2), so lodged spawns this helper for every file API call.
 * It first enters the instance, then resolves the path, so every symlink and ".." resolves
 * exactly as it would for a process in the container, and ids are the container's ids:
 *
 *   --pid PID    a running container: join the user namespace of PID (when it is not ours)
 *                and its mount namespace, then chroot to /proc/PID/root (what nsenter does).
 *   --root DIR   a stopped container: chroot to DIR; with --uid-map/--gid-map lines
 *                ("nsid hostid range", as in /proc/PID/uid_map) first unshare a user namespace
 *                with that map, written by a forked child that stays in the host namespace.
 *
 * Either way the helper then runs as uid/gid 0 of the container's user namespace, holding
 * only the capabilities the container's root holds there: it can write whatever the
 * container's root can, and nothing owned by an id the container does not map.
 *
 * usage: lodge-fileio TARGET [--uid N] [--gid N] [--mode OCTAL] [--append] [--] OP ARGS
 *   stat PATH            JSON on stdout: type, mode, uid, gid, size, mtime, target, entries
 *   read PATH            the bytes of a regular file on stdout (follows symlinks, inside)
 *   write PATH           stdin into the file: create or truncate, or --append to an existing one
 *   mkdir PATH           a directory (success when PATH exists)
 *   symlink TARGET PATH  a symlink (success when it exists with that target)
 *   delete PATH          a file, symlink or empty directory
 * Mode, uid and gid apply only to what the call creates (LXD's rule). Errors: one line on
 * stderr, exit 2 not found, 3 permission denied, 4 cannot enter the instance, 5 exists,
 * 1 anything else.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { E_OTHER = 1, E_NOTFOUND = 2, E_PERM = 3, E_ENTER = 4, E_EXISTS = 5 };

static int code_for(int err) {
  switch (err) {
  case ENOENT: case ENOTDIR: return E_NOTFOUND;
  case EACCES: case EPERM: case EROFS: return E_PERM;
  case EEXIST: return E_EXISTS;
  default: return E_OTHER;
  }
}

#include "helper.h"

static void chroot_to(int rootfd) {
  if (fchdir(rootfd) < 0) enter_fail("fchdir to the instance root");
  if (chroot(".") < 0) enter_fail("chroot");
  if (chdir("/") < 0) enter_fail("chdir /");
  close(rootfd);
}

/* uid/gid 0 of the user namespace we are in; capabilities in it survive the change. */
static void become_ns_root(void) {
  if (setgroups(0, NULL) < 0 && errno != EPERM) enter_fail("setgroups");
  if (setresgid(0, 0, 0) < 0) enter_fail("setresgid 0 in the instance");
  if (setresuid(0, 0, 0) < 0) enter_fail("setresuid 0 in the instance");
}

static void enter_pid(pid_t pid) {
  /* Holding a pidfd proves below that the /proc files all belong to one live process. */
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0 && errno != ENOSYS) enter_fail("pidfd_open");
  int userfd = open_proc(pid, "ns/user", O_RDONLY);
  int mntfd = open_proc(pid, "ns/mnt", O_RDONLY);
  int rootfd = open_proc(pid, "root", O_RDONLY | O_DIRECTORY);
  if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) enter_fail("instance init exited");
  struct stat theirs, ours;
  if (fstat(userfd, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0) enter_fail("stat user namespace");
  int join_user = theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev;
  if (join_user && setns(userfd, CLONE_NEWUSER) < 0) enter_fail("setns user");
  if (setns(mntfd, CLONE_NEWNS) < 0) enter_fail("setns mnt");
  chroot_to(rootfd);
  if (join_user) become_ns_root();
  close(userfd);
  close(mntfd);
  if (pidfd >= 0) close(pidfd);
}

static void write_map(pid_t pid, const char *file, const char *map) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, file);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(E_ENTER, file, errno);
  ssize_t len = (ssize_t)strlen(map);
  if (write(fd, map, (size_t)len) != len) die(E_ENTER, file, errno);
  if (close(fd) < 0) die(E_ENTER, file, errno);
}

/* Only the host namespace may write our map, so a child that never leaves it does so. */
static void enter_root(const char *dir, const char *uidmap, const char *gidmap) {
  int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) enter_fail("open the instance rootfs");
  if (uidmap[0] || gidmap[0]) {
    if (!uidmap[0] || !gidmap[0]) usage("--uid-map and --gid-map go together");
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) enter_fail("pipe");
    pid_t self = getpid();
    pid_t child = fork();
    if (child < 0) enter_fail("fork");
    if (child == 0) {
      char c;
      close(sync[1]);
      if (read(sync[0], &c, 1) != 1) _exit(E_ENTER); /* the parent gave up */
      write_map(self, "uid_map", uidmap);
      write_map(self, "gid_map", gidmap);
      _exit(0);
    }
    close(sync[0]);
    int unshared = unshare(CLONE_NEWUSER);
    int err = errno;
    if (unshared == 0 && write(sync[1], "u", 1) != 1) err = errno, unshared = -1;
    close(sync[1]);
    int status;
    while (waitpid(child, &status, 0) < 0)
      if (errno != EINTR) enter_fail("waitpid");
    if (unshared < 0) die(E_ENTER, "unshare user namespace", err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(E_ENTER, "writing the id map failed", 0);
  }
  chroot_to(rootfd);
  if (uidmap[0]) become_ns_root();
}

static void put_json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p); /* other bytes raw: invalid UTF-8 decodes to U+FFFD, as LXD's JSON */
  }
  putchar('"');
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("open directory");
  DIR *d = fdopendir(fd);
  if (!d) fail("fdopendir");
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  for (errno = 0; (e = readdir(d)); errno = 0) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap && !(names = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names))) fail("realloc");
    if (!(names[n++] = strdup(e->d_name))) fail("strdup");
  }
  if (errno) fail("readdir");
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  printf(",\"entries\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) putchar(',');
    put_json_string(names[i]);
  }
  putchar(']');
}

static void op_stat(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) fail("lstat");
  const char *type = S_ISDIR(st.st_mode) ? "directory" : S_ISLNK(st.st_mode) ? "symlink" : "file";
  printf("{\"type\":\"%s\",\"special\":%s,\"mode\":%u,\"uid\":%u,\"gid\":%u,\"size\":%lld,\"mtime\":%lld",
         type, S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode) ? "false" : "true",
         (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid, (long long)st.st_size,
         (long long)st.st_mtim.tv_sec);
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX + 1];
    ssize_t len = readlink(path, target, PATH_MAX);
    if (len < 0) fail("readlink");
    target[len] = 0;
    printf(",\"target\":");
    put_json_string(target);
  } else if (S_ISDIR(st.st_mode)) {
    list_dir(path);
  }
  printf("}\n");
  if (fflush(stdout) == EOF || ferror(stdout)) fail("write stdout");
}

static void copy_fd(int from, int to, const char *what) {
  static char buf[1 << 16];
  for (;;) {
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(what);
    if (n == 0) return;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(to, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail(what);
      off += w;
    }
  }
}

static void op_read(const char *path) {
  /* O_NONBLOCK: opening a FIFO must not hang; it is refused below anyway. */
  int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("open");
  struct stat st;
  if (fstat(fd, &st) < 0) fail("fstat");
  if (S_ISDIR(st.st_mode)) { errno = EISDIR; fail("read"); }
  if (!S_ISREG(st.st_mode)) usage("not a regular file");
  if (fcntl(fd, F_SETFL, 0) < 0) fail("fcntl");
  copy_fd(fd, STDOUT_FILENO, "read");
  close(fd);
}

/* Owner and mode for something this call created; -1 leaves a field alone. */
static void settle(int fd, long uid, long gid, long mode) {
  if ((uid >= 0 || gid >= 0) && fchown(fd, (uid_t)uid, (gid_t)gid) < 0) fail("chown");
  if (mode >= 0 && fchmod(fd, (mode_t)mode) < 0) fail("chmod"); /* after chown, which clears set-id bits */
}

static void op_write(const char *path, long uid, long gid, long mode, int append) {
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
  if (fd < 0) fail("open");
  struct stat st;
  if (fstat(fd, &st) < 0) fail("fstat");
  if (!S_ISREG(st.st_mode)) usage("not a regular file");
  if (created) settle(fd, uid, gid, mode);
  copy_fd(STDIN_FILENO, fd, "write");
  if (close(fd) < 0) fail("close");
}

static void op_mkdir(const char *path, long uid, long gid, long mode) {
  struct stat st;
  if (stat(path, &st) == 0) return;
  if (mkdir(path, 0700) < 0) fail("mkdir");
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("open directory");
  settle(fd, uid, gid, mode >= 0 ? mode : 0750); /* LXD's default for directories */
  close(fd);
}

static void op_symlink(const char *target, const char *path, long uid, long gid) {
  char cur[PATH_MAX + 1];
  ssize_t len = readlink(path, cur, PATH_MAX);
  if (len >= 0 && (cur[len] = 0, !strcmp(cur, target))) return;
  if (symlink(target, path) < 0) fail("symlink");
  if ((uid >= 0 || gid >= 0) && fchownat(AT_FDCWD, path, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0) fail("chown");
}

/* Like Go's os.Remove, which LXD's file API uses: unlink, else rmdir. */
static void op_delete(const char *path) {
  if (unlink(path) == 0) return;
  int unlink_err = errno;
  if (rmdir(path) == 0) return;
  if (errno != ENOTDIR) fail("rmdir");
  errno = unlink_err;
  fail("unlink");
}

int main(int argc, char **argv) {
  long pid = -1, uid = -1, gid = -1, mode = -1;
  int append = 0, flags_done = 0;
  const char *root = NULL, *pos[3] = {0};
  int npos = 0;
  static char uidmap[4096], gidmap[4096];

  if (prctl(PR_SET_DUMPABLE, 0) < 0) enter_fail("prctl"); /* no ptrace from inside the instance */
  signal(SIGPIPE, SIG_IGN);
  umask(0);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!flags_done && !strcmp(a, "--")) { flags_done = 1; continue; }
    if (!flags_done && !strcmp(a, "--append")) { append = 1; continue; }
    if (!flags_done && a[0] == '-' && a[1] == '-') {
      if (!v) usage("a flag lacks its value");
      i++;
      if (!strcmp(a, "--pid")) pid = parse_num(v, 10, INT_MAX, "bad --pid");
      else if (!strcmp(a, "--root")) root = v;
      else if (!strcmp(a, "--uid")) uid = parse_num(v, 10, 0xfffffffeL, "bad --uid");
      else if (!strcmp(a, "--gid")) gid = parse_num(v, 10, 0xfffffffeL, "bad --gid");
      else if (!strcmp(a, "--mode")) mode = parse_num(v, 8, 07777, "bad --mode (octal)");
      else if (!strcmp(a, "--uid-map") || !strcmp(a, "--gid-map")) {
        char *map = a[2] == 'u' ? uidmap : gidmap;
        if (strspn(v, "0123456789 ") != strlen(v) || strlen(map) + strlen(v) + 2 > sizeof uidmap) usage("bad id map line");
        strcat(strcat(map, v), "\n");
      } else usage("unknown flag");
      continue;
    }
    if (npos == 3) usage("too many arguments");
    pos[npos++] = a;
  }
  if ((pid >= 0) == (root != NULL)) usage("give one of --pid and --root");
  if (npos < 2) usage("usage: lodge-fileio (--pid PID | --root DIR) OP PATH");
  const char *op = pos[0];
  int want = !strcmp(op, "symlink") ? 3 : 2;
  if (npos != want) usage("wrong number of arguments for the operation");
  if (!strcmp(op, "symlink") ? !pos[1][0] || !pos[2][0] : !pos[1][0]) usage("empty path");
  if (strcmp(op, "stat") && strcmp(op, "read") && strcmp(op, "write") && strcmp(op, "mkdir") &&
      strcmp(op, "symlink") && strcmp(op, "delete"))
    usage("unknown operation");

  if (pid >= 0) enter_pid((pid_t)pid);
  else enter_root(root, uidmap, gidmap);

  if (!strcmp(op, "stat")) op_stat(pos[1]);
  else if (!strcmp(op, "read")) op_read(pos[1]);
  else if (!strcmp(op, "write")) op_write(pos[1], uid, gid, mode, append);
  else if (!strcmp(op, "mkdir")) op_mkdir(pos[1], uid, gid, mode);
  else if (!strcmp(op, "symlink")) op_symlink(pos[1], pos[2], uid, gid);
  else op_delete(pos[1]);
  return 0;
}
