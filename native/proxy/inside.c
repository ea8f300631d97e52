/*
 * The helper: a child that enters the instance — its user namespace (when not ours), network
 * and mount namespaces, and its root — and makes the instance side's sockets on request,
 * handing each back over a SOCK_SEQPACKET pair with SCM_RIGHTS.
 *
 * Joining the user namespace first makes the helper the instance's root rather than the
 * host's: an unprivileged container's files, ports and sockets are dealt with as its own root
 * would (and after OP_DROP, as security.uid/security.gid), never with host privileges. A
 * socket made here keeps these namespaces wherever its fd goes.
 *
 * The helper is in the host's pid namespace, so nothing inside the instance can see or signal
 * it. It exits when the forwarder's end of the pair closes, removing the socket files it made.
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct request {
  int op;
  struct endpoint ep;
  struct sockmode sm;
  long uid, gid;
};

struct reply {
  int err;
  char what[96];
};

static int send_reply(int sock, int err, const char *what, int fd) {
  struct reply r = {.err = err};
  snprintf(r.what, sizeof r.what, "%s", what ? what : "");
  struct iovec iov = {.iov_base = &r, .iov_len = sizeof r};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof r ? 0 : -1;
}

static int open_proc(pid_t pid, const char *rel, int flags) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, rel);
  return open(p, flags | O_CLOEXEC);
}

static int enter(pid_t pid, const char **what) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return *what = "the instance's init is gone (pidfd_open)", -1;
  int userfd = open_proc(pid, "ns/user", O_RDONLY), netfd = open_proc(pid, "ns/net", O_RDONLY);
  int mntfd = open_proc(pid, "ns/mnt", O_RDONLY), rootfd = open_proc(pid, "root", O_RDONLY | O_DIRECTORY);
  if (userfd < 0 || netfd < 0 || mntfd < 0 || rootfd < 0) return *what = "open the instance's namespaces", -1;
  /* The fds were opened while the pidfd's process lived: they are that process's. */
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) return *what = "the instance's init exited", -1;
  struct stat theirs, ours;
  if (fstat(userfd, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0) return *what = "stat user namespace", -1;
  int join_user = theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev;
  if (join_user && setns(userfd, CLONE_NEWUSER) < 0) return *what = "setns user", -1;
  if (setns(netfd, CLONE_NEWNET) < 0) return *what = "setns net", -1;
  if (setns(mntfd, CLONE_NEWNS) < 0) return *what = "setns mnt", -1;
  if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0) return *what = "chroot to the instance's root", -1;
  if (join_user) {
    if (setgroups(0, NULL) < 0 && errno != EPERM) return *what = "setgroups", -1;
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) return *what = "become root of the instance", -1;
  }
  close(userfd), close(netfd), close(mntfd), close(rootfd), close(pidfd);
  return 0;
}

static int drop_to(long uid, long gid, const char **what) {
  if (setgroups(0, NULL) < 0 && errno != EPERM) return *what = "setgroups", -1;
  if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) return *what = "setresgid to security.gid", -1;
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) return *what = "setresuid to security.uid", -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return *what = "no_new_privs", -1;
  return 0;
}

static void __attribute__((noreturn)) helper(pid_t pid, int sock) {
  const char *what = NULL;
  prctl(PR_SET_DUMPABLE, 0);
  signal(SIGTERM, SIG_IGN); /* the forwarder's exit (closing the pair) ends us, after cleanup */
  if (enter(pid, &what) < 0) {
    send_reply(sock, errno, what, -1);
    _exit(1);
  }
  if (send_reply(sock, 0, NULL, -1) < 0) _exit(1);
  struct madefile *made = NULL;
  size_t nmade = 0;
  for (;;) {
    struct request rq;
    ssize_t n = recv(sock, &rq, sizeof rq, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof rq) break; /* EOF: the forwarder is gone */
    what = NULL;
    if (rq.op == OP_DROP) {
      if (send_reply(sock, drop_to(rq.uid, rq.gid, &what) < 0 ? errno : 0, what, -1) < 0) break;
      continue;
    }
    int fd = open_endpoint(rq.op, &rq.ep, &rq.sm, &what);
    if (fd < 0) {
      if (send_reply(sock, errno, what, -1) < 0) break;
      continue;
    }
    if (rq.op == OP_LISTEN && endpoint_path(&rq.ep)) {
      struct madefile *grown = realloc(made, (nmade + 1) * sizeof *made);
      if (grown) remember_file(&(made = grown)[nmade++], &rq.ep);
    }
    int sent = send_reply(sock, 0, NULL, fd);
    close(fd);
    if (sent < 0) break;
  }
  for (size_t i = 0; i < nmade; i++) remove_file(&made[i]);
  _exit(0);
}

int inside_start(pid_t pid, char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    snprintf(err, errlen, "socketpair: %s", strerror(errno));
    return -1;
  }
  pid_t child = fork();
  if (child < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    return -1;
  }
  if (child == 0) {
    /* Nothing of the forwarder's but the pair: not the pipe to the starting command. */
    close_range(3, (unsigned)sv[1] - 1, 0);
    close_range((unsigned)sv[1] + 1, ~0U, 0);
    helper(pid, sv[1]);
  }
  close(sv[1]);
  struct reply r;
  ssize_t n = recv(sv[0], &r, sizeof r, 0);
  if (n != (ssize_t)sizeof r || r.err) {
    if (n == (ssize_t)sizeof r) snprintf(err, errlen, "entering the instance: %s: %s", r.what, strerror(r.err));
    else snprintf(err, errlen, "entering the instance: the helper died");
    close(sv[0]);
    waitpid(child, NULL, 0);
    return -1;
  }
  return sv[0];
}

int inside_request(int sock, int op, const struct endpoint *ep, const struct sockmode *sm, long uid, long gid,
                   const char **what, int *err) {
  static char whatbuf[sizeof((struct reply *)0)->what];
  struct request rq;
  memset(&rq, 0, sizeof rq);
  rq.op = op;
  if (ep) rq.ep = *ep;
  rq.sm = sm ? *sm : (struct sockmode){-1, -1, -1};
  rq.uid = uid;
  rq.gid = gid;
  if (send(sock, &rq, sizeof rq, MSG_NOSIGNAL) != (ssize_t)sizeof rq) {
    *err = errno;
    *what = "the helper in the instance is gone";
    return -1;
  }
  struct reply r;
  struct iovec iov = {.iov_base = &r, .iov_len = sizeof r};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n != (ssize_t)sizeof r) {
    *err = n < 0 ? errno : EPIPE;
    *what = "the helper in the instance is gone";
    return -1;
  }
  int fd = -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
  if (r.err) {
    if (fd >= 0) close(fd);
    memcpy(whatbuf, r.what, sizeof whatbuf);
    whatbuf[sizeof whatbuf - 1] = 0;
    *what = whatbuf;
    *err = r.err;
    return -1;
  }
  return op == OP_DROP ? 0 : fd;
}
