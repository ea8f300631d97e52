/*
 * lodge-hotplug: changes the mounts of a running container from outside, and makes device
 * nodes on the host for it (Node has neither mknod(2) nor the new mount API nor setns(2)).
 *
 *   mknod PATH c|b MAJOR MINOR MODE UID GID
 *       a device node on the host (host ids), replacing nothing.
 *   mount --pid PID [--readonly] [--idmap] [--recursive] [--optional] [--propagation P] SOURCE TARGET
 *       clones the host's SOURCE as a detached mount (open_tree; --recursive: with its
 *       sub-mounts), makes it read-only and/or idmapped to the container's user namespace
 *       (mount_setattr) while still on the host, then joins the container's user and mount
 *       namespaces, chroots to its root, creates the mount point (a directory or a file, as
 *       SOURCE is) and attaches it (move_mount). It is private unless --propagation says
 *       shared, slave, unbindable or private (r…: the sub-mounts too), set once attached.
 *       --optional: a missing SOURCE is success, nothing done.
 *       --readonly in a container with its own user namespace: the flag is locked (see
 *       lock_tree), so container root cannot remount the mount read-write.
 *   stage [--readonly] [--recursive] [--keep-peers] [--map "u|g NSID HOSTID COUNT"]... SOURCE AT
 *       for a container about to start: clones SOURCE (open_tree), makes the clone read-only
 *       and/or idmapped to a user namespace with the given map (mount_setattr), and attaches it
 *       at AT on the host (an existing directory or file). liblxc binds AT into the container
 *       as its mount namespace is copied from the host's into the container's user namespace,
 *       which locks the flags. Private unless --keep-peers (a propagation the caller sets).
 *   unstage PATH...
 *       detaches every mount at each PATH (lazily) and removes PATH (a directory, or an empty
 *       file as stage's mount points are): what stage made, once the container has started.
 *   umount --pid PID [--remove] TARGET
 *       inside the container: detaches the mount at TARGET (success when none is there);
 *       --remove then deletes TARGET when it is an empty file (a device node's mount point as
 *       made here), so a file the container had there before is never removed.
 *
 * TARGET resolves inside the container, as it would for a process there (its symlinks, its
 * root): what the container's root may change can only redirect the mount within its own view.
 * Errors: one line on stderr; exit 2 source not found, 3 permission denied, 4 cannot enter the
 * container, 5 the mount point exists as the wrong kind, 1 anything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { E_OTHER = 1, E_NOTFOUND = 2, E_PERM = 3, E_ENTER = 4, E_KIND = 5 };

static int code_for(int err) {
  switch (err) {
  case ENOENT: return E_NOTFOUND;
  case EACCES: case EPERM: case EROFS: return E_PERM;
  default: return E_OTHER;
  }
}

#include "helper.h"

/* The namespaces and root of a container's init, opened together while it is alive. */
struct target {
  int userfd, mntfd, rootfd;
  int join_user, user_joined;
};

static struct target open_target(pid_t pid) {
  struct target t;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) enter_fail("pidfd_open");
  t.userfd = open_proc(pid, "ns/user", O_RDONLY);
  t.mntfd = open_proc(pid, "ns/mnt", O_RDONLY);
  t.rootfd = open_proc(pid, "root", O_RDONLY | O_DIRECTORY);
  /* Still alive after the opens: the files belong to this process, not a recycled pid. */
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) enter_fail("container init exited");
  close(pidfd);
  struct stat theirs, ours;
  if (fstat(t.userfd, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0) enter_fail("stat user namespace");
  t.join_user = theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev;
  t.user_joined = 0;
  return t;
}

/* Joins the container's user namespace as its root (once; nothing for a privileged one). */
static void join_user(struct target *t) {
  if (!t->join_user || t->user_joined) return;
  if (setns(t->userfd, CLONE_NEWUSER) < 0) enter_fail("setns user");
  if (setgroups(0, NULL) < 0 && errno != EPERM) enter_fail("setgroups");
  if (setresgid(0, 0, 0) < 0) enter_fail("setresgid 0 in the container");
  if (setresuid(0, 0, 0) < 0) enter_fail("setresuid 0 in the container");
  t->user_joined = 1;
}

/* Joins the container: user namespace (root there), mount namespace, its root. */
static void enter(struct target *t) {
  join_user(t);
  if (setns(t->mntfd, CLONE_NEWNS) < 0) enter_fail("setns mnt");
  if (fchdir(t->rootfd) < 0) enter_fail("fchdir to the container root");
  if (chroot(".") < 0) enter_fail("chroot");
  if (chdir("/") < 0) enter_fail("chdir /");
  close(t->rootfd);
  close(t->mntfd);
}

/*
 * The kernel locks a mount's flags (read-only among them) against a user namespace only when
 * it copies a mount namespace into that user namespace: a mount attached from inside, as
 * move_mount does, can be remounted read-write by the container's root. So the detached TREE
 * is parked in a private copy of the host's mount namespace (on a tmpfs of its own there), the
 * helper joins the container's user namespace and copies that namespace again, and clones the
 * tree back out of the copy: the clone keeps the locks. Leaves the helper in the container's
 * user namespace, in a mount namespace of its own that goes away with it.
 */
static int lock_tree(int tree, struct target *t, int dir, unsigned rec) {
  static const char park_dir[] = "/tmp", park[] = "/tmp/lodge-park";
  if (unshare(CLONE_NEWNS) < 0) other("unshare a private mount namespace");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) other("make the private mount namespace private");
  if (mount("lodge-park", park_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=16k") < 0) other("mount a parking tmpfs");
  if (dir ? mkdir(park, 0755) < 0 : close(open(park, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) other("make the parking mount point");
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, park, MOVE_MOUNT_F_EMPTY_PATH) < 0) other("move_mount (park)");
  close(tree);
  join_user(t);
  if (unshare(CLONE_NEWNS) < 0) other("unshare a mount namespace in the container's user namespace");
  int locked = (int)syscall(SYS_open_tree, AT_FDCWD, park, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
  if (locked < 0) other("open_tree (the locked clone)");
  return locked;
}

/* Every directory above PATH (inside the container), made as its root would make them. */
static void make_parents(const char *path) {
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) usage("target path too long");
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) fail("create the mount point's parent");
    *p = '/';
  }
}

static void make_mount_point(const char *target, int dir) {
  make_parents(target);
  struct stat st;
  if (stat(target, &st) == 0) {
    if ((S_ISDIR(st.st_mode) ? 1 : 0) != dir) die(E_KIND, dir ? "the mount point exists and is not a directory" : "the mount point exists and is a directory", 0);
    return;
  }
  if (dir) {
    if (mkdir(target, 0755) < 0 && errno != EEXIST) fail("create the mount point");
    return;
  }
  int fd = open(target, O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) fail("create the mount point");
  close(fd);
}

/* mount(8)'s propagation names → MS_* flags (with MS_REC for the r… forms); 0 when unknown. */
static unsigned long propagation_flags(const char *name) {
  static const struct { const char *name; unsigned long flag; } table[] = {
      {"private", MS_PRIVATE}, {"shared", MS_SHARED}, {"slave", MS_SLAVE}, {"unbindable", MS_UNBINDABLE},
  };
  int rec = name[0] == 'r';
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (!strcmp(name + rec, table[i].name)) return table[i].flag | (rec ? MS_REC : 0);
  return 0;
}

/*
 * A detached clone of SOURCE (with its sub-mounts when recursive), made read-only and/or
 * idmapped to USERNS_FD (-1: not) while still on the host. Private unless keep_peers: then the
 * clone keeps its source's peer group until it is attached, so a slave (or shared) mount is
 * one of the host's, as with mount --bind.
 */
static int clone_tree(const char *source, unsigned rec, int readonly, int userns_fd, int keep_peers) {
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
  if (tree < 0) fail("open_tree");
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.propagation = keep_peers ? 0 : MS_PRIVATE;
  if (readonly) attr.attr_set |= MOUNT_ATTR_RDONLY;
  if (userns_fd >= 0) {
    attr.attr_set |= MOUNT_ATTR_IDMAP;
    attr.userns_fd = (unsigned)userns_fd;
  }
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rec, &attr, sizeof attr) < 0)
    other(userns_fd >= 0 ? "mount_setattr (idmapped mounts need a filesystem that supports them)" : "mount_setattr");
  return tree;
}

static void op_mount(pid_t pid, const char *source, const char *target, int readonly, int idmap, int recursive, int optional, unsigned long propagation) {
  struct stat st;
  if (stat(source, &st) < 0) {
    if (errno == ENOENT && optional) return;
    fail("source");
  }
  struct target t = open_target(pid);
  if (idmap && !t.join_user) usage("--idmap needs a container with its own user namespace");
  unsigned rec = recursive ? AT_RECURSIVE : 0;
  int tree = clone_tree(source, rec, readonly, idmap ? t.userfd : -1, propagation != 0);
  if (readonly && t.join_user) tree = lock_tree(tree, &t, S_ISDIR(st.st_mode), rec);
  enter(&t);
  make_mount_point(target, S_ISDIR(st.st_mode));
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) other("move_mount");
  close(tree);
  if (propagation && mount(NULL, target, NULL, propagation, NULL) < 0) other("set the mount's propagation");
}

/* A user namespace with the given map ("u|g NSID HOSTID COUNT" lines), as an fd: a child
 * unshares one and waits while the map is written and the namespace opened, then exits. */
static int userns_with_map(char **maps, int nmaps) {
  char uids[1024] = "", gids[1024] = "";
  for (int i = 0; i < nmaps; i++) {
    char kind;
    unsigned long ns, host, count;
    if (sscanf(maps[i], "%c %lu %lu %lu", &kind, &ns, &host, &count) != 4 || (kind != 'u' && kind != 'g')) usage("--map is \"u|g NSID HOSTID COUNT\"");
    char *buf = kind == 'u' ? uids : gids;
    size_t len = strlen(buf);
    if (snprintf(buf + len, sizeof uids - len, "%lu %lu %lu\n", ns, host, count) >= (int)(sizeof uids - len)) usage("--map: too many entries");
  }
  if (!uids[0] || !gids[0]) usage("--map needs u and g entries");
  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) other("pipe");
  pid_t child = fork();
  if (child < 0) other("fork");
  if (child == 0) {
    close(hold[1]); /* or the read below never sees the parent's end close */
    close(ready[0]);
    char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    (void)!read(hold[0], &c, 1); /* until the parent closes its end */
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  char c = 0;
  if (read(ready[0], &c, 1) != 1 || c != 'y') other("unshare a user namespace for the id map");
  char p[64];
  const char *files[2] = {"uid_map", "gid_map"}, *text[2] = {uids, gids};
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "/proc/%d/%s", (int)child, files[i]);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text[i], strlen(text[i])) != (ssize_t)strlen(text[i])) other("write the id map");
    close(fd);
  }
  snprintf(p, sizeof p, "/proc/%d/ns/user", (int)child);
  int userfd = open(p, O_RDONLY | O_CLOEXEC);
  if (userfd < 0) other("open the id map's user namespace");
  close(hold[1]);
  waitpid(child, NULL, 0);
  return userfd;
}

static void op_stage(const char *source, const char *at, int readonly, int recursive, int keep_peers, char **maps, int nmaps) {
  int tree = clone_tree(source, recursive ? AT_RECURSIVE : 0, readonly, nmaps ? userns_with_map(maps, nmaps) : -1, keep_peers);
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, at, MOVE_MOUNT_F_EMPTY_PATH) < 0) other("move_mount");
}

static void op_unstage(char **paths, int n) {
  for (int i = 0; i < n; i++) {
    while (umount2(paths[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {}
    if (errno != EINVAL && errno != ENOENT) fail("umount");
    struct stat st;
    if (lstat(paths[i], &st) < 0) {
      if (errno == ENOENT) continue;
      fail("lstat");
    }
    if (S_ISDIR(st.st_mode) ? rmdir(paths[i]) < 0 : S_ISREG(st.st_mode) && st.st_size == 0 && unlink(paths[i]) < 0) fail("remove the mount point");
  }
}

static void op_umount(pid_t pid, const char *target, int remove) {
  struct target t = open_target(pid);
  enter(&t);
  if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) fail("umount");
  if (!remove) return;
  struct stat st;
  if (lstat(target, &st) < 0) {
    if (errno == ENOENT) return;
    fail("lstat the mount point");
  }
  /* Only an empty file, as mount points are made here: never a file of the container's own. */
  if (S_ISREG(st.st_mode) && st.st_size == 0 && unlink(target) < 0 && errno != ENOENT) fail("remove the mount point");
}

static void op_mknod(char **a) {
  mode_t type = !strcmp(a[1], "c") ? S_IFCHR : !strcmp(a[1], "b") ? S_IFBLK : 0;
  if (!type) usage("the node type is c or b");
  unsigned maj = (unsigned)parse_num(a[2], 10, 0xfff, "bad major (0-4095)");
  unsigned min = (unsigned)parse_num(a[3], 10, 0xfffff, "bad minor (0-1048575)");
  mode_t mode = (mode_t)parse_num(a[4], 8, 07777, "bad mode (octal)");
  uid_t uid = (uid_t)parse_num(a[5], 10, 0xfffffffeL, "bad uid");
  gid_t gid = (gid_t)parse_num(a[6], 10, 0xfffffffeL, "bad gid");
  if (a[0][0] != '/') usage("the node path must be absolute");
  if (mknod(a[0], type | (mode & 0777), makedev(maj, min)) < 0) fail("mknod");
  if (lchown(a[0], uid, gid) < 0) fail("chown");
  if (chmod(a[0], mode) < 0) fail("chmod"); /* after chown, which clears set-id bits */
}

int main(int argc, char **argv) {
  if (prctl(PR_SET_DUMPABLE, 0) < 0) other("prctl"); /* no ptrace from inside the container */
  umask(0);
  long pid = -1;
  int readonly = 0, idmap = 0, recursive = 0, optional = 0, remove = 0, keep_peers = 0;
  unsigned long propagation = 0;
  char *pos[64], *maps[16];
  int npos = 0, nmaps = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--pid")) {
      if (i + 1 >= argc) usage("--pid needs a value");
      pid = parse_num(argv[++i], 10, INT_MAX, "bad --pid");
    } else if (!strcmp(a, "--readonly")) readonly = 1;
    else if (!strcmp(a, "--idmap")) idmap = 1;
    else if (!strcmp(a, "--recursive")) recursive = 1;
    else if (!strcmp(a, "--optional")) optional = 1;
    else if (!strcmp(a, "--remove")) remove = 1;
    else if (!strcmp(a, "--keep-peers")) keep_peers = 1;
    else if (!strcmp(a, "--map")) {
      if (i + 1 >= argc || nmaps == 16) usage("--map needs a value (at most 16)");
      maps[nmaps++] = argv[++i];
    }
    else if (!strcmp(a, "--propagation")) {
      if (i + 1 >= argc || !(propagation = propagation_flags(argv[++i]))) usage("--propagation needs one of private, shared, slave, unbindable (or r…)");
    }
    else if (a[0] == '-' && a[1] == '-') usage("unknown flag");
    else {
      if (npos == 64) usage("too many arguments");
      pos[npos++] = argv[i];
    }
  }
  if (npos < 1) usage("usage: lodge-hotplug mknod|mount|umount ...");
  const char *op = pos[0];
  if (!strcmp(op, "mknod")) {
    if (npos != 8) usage("usage: lodge-hotplug mknod PATH c|b MAJOR MINOR MODE UID GID");
    op_mknod(pos + 1);
    return 0;
  }
  if (!strcmp(op, "stage")) {
    if (npos != 3 || pos[1][0] != '/' || pos[2][0] != '/') usage("usage: lodge-hotplug stage [flags] SOURCE AT (absolute paths)");
    op_stage(pos[1], pos[2], readonly, recursive, keep_peers, maps, nmaps);
    return 0;
  }
  if (!strcmp(op, "unstage")) {
    for (int i = 1; i < npos; i++) if (pos[i][0] != '/') usage("unstage: paths must be absolute");
    op_unstage(pos + 1, npos - 1);
    return 0;
  }
  if (pid <= 0) usage("--pid is required");
  if (!strcmp(op, "mount")) {
    if (npos != 3) usage("usage: lodge-hotplug mount --pid PID [flags] SOURCE TARGET");
    if (pos[1][0] != '/' || pos[2][0] != '/') usage("SOURCE and TARGET must be absolute");
    op_mount((pid_t)pid, pos[1], pos[2], readonly, idmap, recursive, optional, propagation);
  } else if (!strcmp(op, "umount")) {
    if (npos != 2) usage("usage: lodge-hotplug umount --pid PID [--remove] TARGET");
    if (pos[1][0] != '/') usage("TARGET must be absolute");
    op_umount((pid_t)pid, pos[1], remove);
  } else usage("unknown operation");
  return 0;
}
