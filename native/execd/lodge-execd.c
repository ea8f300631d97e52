/*
 * lodge-execd: the exec agent of one running container.
 *
 * lxc-attach starts it inside the container (namespaces, cgroups, seccomp, capabilities and
 * LSM exactly as for any attached command), with its stdin a unix socket to lodged. From then
 * on each exec is one message: the agent forks (a small process, so cheap), the child takes the
 * three descriptors that came with the message as its stdio and execs the command. So an exec
 * costs no lxc-attach and no fork of the daemon.
 *
 * Protocol, native byte order (both ends are on this host). Every frame begins with
 *   u32 len (bytes after this field), u32 type, u32 id
 * lodged → agent:
 *   EXEC   (1): i32 uid, i32 gid (-1: keep root), u32 argc, u32 envc, then NUL-terminated
 *               strings: cwd, argv[argc], env[envc] ("K=V"); exactly 3 descriptors travel with
 *               the frame (SCM_RIGHTS): stdin, stdout, stderr.
 *   SIGNAL (2): i32 signal number
 * agent → lodged (16 bytes each):
 *   READY   (0): i32 agent pid (inside the container)
 *   STARTED (1): i32 pid of the command (inside the container)
 *   EXITED  (2): i32 exit code (128+n when killed by signal n)
 * A failed exec reports STARTED then EXITED 127 (not found) or 126 (not runnable), after the
 * child wrote the reason to the command's stderr. When lodged goes away (EOF), the agent exits;
 * commands already running carry on. The agent leaves lxc-attach behind once it is set up (it
 * forks and lives on under the container's init).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { T_EXEC = 1, T_SIGNAL = 2 };
enum { R_READY = 0, R_STARTED = 1, R_EXITED = 2 };
#define MAX_FRAME (8u << 20)
#define MAX_FDS 96

extern char **environ;

struct child {
  pid_t pid;
  uint32_t id;
};

static struct child *children;
static size_t nchildren, capchildren;
static int fdq[MAX_FDS];
static size_t nfdq;

static void die(const char *what) {
  /* stderr is /dev/null inside; the exit itself tells lodged. */
  (void)what;
  _exit(1);
}

static void send_frame(uint32_t type, uint32_t id, int32_t value) {
  uint32_t f[4] = {12, type, id, (uint32_t)value};
  const char *p = (const char *)f;
  size_t left = sizeof f;
  while (left > 0) {
    ssize_t n = write(0, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0); /* lodged is gone */
    p += n;
    left -= (size_t)n;
  }
}

static void add_child(pid_t pid, uint32_t id) {
  if (nchildren == capchildren) {
    capchildren = capchildren ? capchildren * 2 : 16;
    children = realloc(children, capchildren * sizeof *children);
    if (!children) die("realloc");
  }
  children[nchildren].pid = pid;
  children[nchildren].id = id;
  nchildren++;
}

static struct child *find_by_id(uint32_t id) {
  for (size_t i = 0; i < nchildren; i++)
    if (children[i].id == id) return &children[i];
  return NULL;
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < nchildren; i++) {
      if (children[i].pid != pid) continue;
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      uint32_t id = children[i].id;
      children[i] = children[--nchildren];
      send_frame(R_EXITED, id, code);
      break;
    }
  }
}

static void child_fail(const char *what, const char *arg, int err, int code) {
  dprintf(2, "lodge: %s %s: %s\n", what, arg, strerror(err));
  _exit(code);
}

static void run_exec(uint32_t id, const char *payload, uint32_t len, int fds[3], sigset_t *oldmask) {
  if (len < 16) {
    for (int i = 0; i < 3; i++) close(fds[i]);
    send_frame(R_STARTED, id, -1);
    send_frame(R_EXITED, id, 127);
    return;
  }
  int32_t uid, gid;
  uint32_t argc, envc;
  memcpy(&uid, payload, 4);
  memcpy(&gid, payload + 4, 4);
  memcpy(&argc, payload + 8, 4);
  memcpy(&envc, payload + 12, 4);
  const char *p = payload + 16, *end = payload + len;
  /* Split the strings: cwd, argv, env; every one must end inside the frame. */
  size_t total = 1 + (size_t)argc + (size_t)envc;
  if (argc == 0 || argc > 1u << 20 || envc > 1u << 20) total = 0;
  char **strs = total ? calloc(total + 2, sizeof *strs) : NULL;
  size_t k = 0;
  while (strs && k < total && p < end) {
    const char *nul = memchr(p, 0, (size_t)(end - p));
    if (!nul) break;
    strs[k++] = (char *)p;
    p = nul + 1;
  }
  if (!strs || k != total) {
    free(strs);
    for (int i = 0; i < 3; i++) close(fds[i]);
    send_frame(R_STARTED, id, -1);
    send_frame(R_EXITED, id, 127);
    return;
  }
  const char *cwd = strs[0];
  char **argv = malloc((argc + 1) * sizeof *argv);
  char **envp = malloc((envc + 1) * sizeof *envp);
  if (!argv || !envp) die("malloc");
  for (uint32_t i = 0; i < argc; i++) argv[i] = strs[1 + i];
  argv[argc] = NULL;
  for (uint32_t i = 0; i < envc; i++) envp[i] = strs[1 + argc + i];
  envp[envc] = NULL;

  pid_t pid = fork();
  if (pid == 0) {
    /* The command: default signal handling, its own session, the three descriptors. */
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, oldmask, NULL);
    setsid();
    for (int i = 0; i < 3; i++) {
      int fd = fds[i];
      if (fd == i) {
        fcntl(fd, F_SETFD, 0);
        continue;
      }
      if (dup2(fd, i) < 0) _exit(127);
    }
    syscall(SYS_close_range, 3, ~0U, 0);
    if (gid >= 0 || uid >= 0) {
      if (setgroups(0, NULL) < 0) child_fail("cannot drop groups for", argv[0], errno, 127);
      if (gid >= 0 && setgid((gid_t)gid) < 0) child_fail("cannot switch to group of", argv[0], errno, 127);
      if (uid >= 0 && setuid((uid_t)uid) < 0) child_fail("cannot switch to user of", argv[0], errno, 127);
    }
    if (chdir(cwd) < 0) child_fail("cannot enter directory", cwd, errno, 127);
    environ = envp; /* execvp searches the command's own PATH */
    execvp(argv[0], argv);
    int err = errno;
    child_fail("cannot run", argv[0], err, err == ENOENT ? 127 : 126);
  }
  for (int i = 0; i < 3; i++) close(fds[i]);
  free(argv);
  free(envp);
  free(strs);
  if (pid < 0) {
    send_frame(R_STARTED, id, -1);
    send_frame(R_EXITED, id, 127);
    return;
  }
  add_child(pid, id);
  send_frame(R_STARTED, id, pid);
}

int main(void) {
  prctl(PR_SET_NAME, "lodge-execd", 0, 0, 0);
  /* Only the control socket stays: stdout/stderr point at nothing useful inside. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 1);
    dup2(null, 2);
  }
  syscall(SYS_close_range, 3, ~0U, 0);
  if (chdir("/") < 0) die("chdir");
  signal(SIGPIPE, SIG_IGN);

  sigset_t mask, oldmask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, &oldmask);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");

  /*
   * Leave lxc-attach at once: it (and its helper outside the pid namespace, which sits in the
   * container's cgroup) would otherwise live as long as the agent, keep a host process per
   * container, and hold the cgroup when the container dies. The agent carries on under the
   * container's init, which reaps it.
   */
  pid_t daemon = fork();
  if (daemon < 0) die("fork");
  if (daemon > 0) _exit(0);
  setsid();
  send_frame(R_READY, 0, getpid());

  size_t cap = 1 << 16, have = 0;
  char *buf = malloc(cap);
  if (!buf) die("malloc");
  for (;;) {
    struct pollfd pfd[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (pfd[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      reap();
    }
    if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    if (cap - have < 4096) {
      if (cap >= MAX_FRAME + 16) die("frame too large");
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) die("realloc");
    }
    char cbuf[CMSG_SPACE(sizeof(int) * 16)];
    struct iovec iov = {.iov_base = buf + have, .iov_len = cap - have};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(0, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) _exit(0); /* lodged went away */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int *fds = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < count; i++) {
        if (nfdq < MAX_FDS) fdq[nfdq++] = fds[i];
        else close(fds[i]);
      }
    }
    have += (size_t)n;
    /* Handle every whole frame in the buffer. */
    size_t off = 0;
    while (have - off >= 12) {
      uint32_t len, type, id;
      memcpy(&len, buf + off, 4);
      memcpy(&type, buf + off + 4, 4);
      memcpy(&id, buf + off + 8, 4);
      if (len < 8 || len > MAX_FRAME) die("bad frame");
      if (have - off < 4 + (size_t)len) break;
      const char *payload = buf + off + 12;
      uint32_t plen = len - 8;
      if (type == T_EXEC) {
        if (nfdq < 3) die("exec without descriptors");
        int fds[3] = {fdq[0], fdq[1], fdq[2]};
        memmove(fdq, fdq + 3, (nfdq - 3) * sizeof(int));
        nfdq -= 3;
        run_exec(id, payload, plen, fds, &oldmask);
      } else if (type == T_SIGNAL && plen >= 4) {
        int32_t sig;
        memcpy(&sig, payload, 4);
        struct child *c = find_by_id(id);
        if (c && sig > 0 && sig < NSIG) kill(c->pid, sig);
      }
      off += 4 + (size_t)len;
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
}
