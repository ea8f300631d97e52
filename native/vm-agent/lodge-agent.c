/*
 * lodge-agent: Lodge's guest agent, one static binary that runs in any Linux guest.
 *
 * The image's loader copies it from the config drive (a small ext4 disk labelled
 * lodge-config, made by lodged at every boot) to a tmpfs and starts it, so upgrading Lodge
 * upgrades the agents. It serves lodged over the virtio-serial port org.lodge.agent.0: exec
 * (pipes or a pty, many at once, with flow control), file calls and guest state. The framed,
 * multiplexed protocol is in docs/vm-agent.md.
 *
 * One thread, one poll loop. The port is non-blocking and everything to the host goes through
 * one output queue; each channel's output is bounded by the window the host grants, so a slow
 * reader on the host stops one command, not the agent.
 *
 * virtio-serial reports POLLHUP while no host is connected (lodged stopped, or not yet
 * attached): the agent then drops the session, stops polling the port and looks again every
 * 200 ms, so it neither spins nor misses lodged coming back. A HELLO from the host also starts
 * a fresh session, for a reconnect too quick to be seen as a hang-up.
 *
 * usage: lodge-agent [--conf FILE] [--port NAME|PATH] [--fd N]
 *   --fd N serves an inherited descriptor instead of a port (tests on the host).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"

extern char **environ;

/* ---- byte strings ---- */

void sb_add(struct sb *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->d, cap);
    if (!d) abort();
    b->d = d, b->cap = cap;
  }
  if (n) memcpy(b->d + b->len, p, n);
  b->len += n;
  b->d[b->len] = 0;
}

void sb_printf(struct sb *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < (int)sizeof tmp) return sb_add(b, tmp, (size_t)n);
  char *big = malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb_add(b, big, (size_t)n);
  free(big);
}

void sb_json_string(struct sb *b, const char *s) {
  sb_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      sb_add(b, e, 2);
    } else if (*p < 0x20) {
      sb_printf(b, "\\u%04x", *p);
    } else {
      sb_add(b, p, 1); /* other bytes raw: invalid UTF-8 decodes to U+FFFD, as LXD's JSON */
    }
  }
  sb_add(b, "\"", 1);
}

void sb_free(struct sb *b) {
  free(b->d);
  b->d = NULL, b->len = b->cap = 0;
}

/* ---- the port and the output queue ---- */

static int port = -1;
static int port_hup;        /* no host connected: the port is left out of poll */
static struct sb outq;      /* frames waiting for the port */
static size_t outq_off;     /* bytes of outq already written */
static struct sb inq;       /* bytes read from the port, not yet a whole frame */

static void put_u32(unsigned char *p, uint32_t v) { p[0] = v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24; }
static uint32_t get_u32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

void send_frame(uint32_t chan, uint8_t type, const void *payload, size_t len) {
  if (port_hup) return; /* nobody to read it; the host starts a new session when it comes back */
  unsigned char h[HDR];
  put_u32(h, (uint32_t)len);
  put_u32(h + 4, chan);
  h[8] = type;
  sb_add(&outq, h, HDR);
  sb_add(&outq, payload, len);
}

void send_i32(uint32_t chan, uint8_t type, int32_t v) {
  unsigned char p[4];
  put_u32(p, (uint32_t)v);
  send_frame(chan, type, p, 4);
}

void send_error(uint32_t chan, int err, const char *what) {
  struct sb b = {0};
  unsigned char p[4];
  put_u32(p, (uint32_t)err);
  sb_add(&b, p, 4);
  sb_printf(&b, "%s: %s", what, strerror(err));
  send_frame(chan, A_ERROR, b.d, b.len);
  sb_free(&b);
}

static void flush_out(void) {
  while (outq_off < outq.len) {
    ssize_t n = write(port, outq.d + outq_off, outq.len - outq_off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* EAGAIN: poll says when; other errors show as a hang-up */
    outq_off += (size_t)n;
  }
  if (outq_off == outq.len) outq.len = outq_off = 0;
  else if (outq_off > (1u << 20)) { /* keep the queue from growing at its front */
    memmove(outq.d, outq.d + outq_off, outq.len - outq_off);
    outq.len -= outq_off, outq_off = 0;
  }
}

/* ---- channels ---- */

enum { K_EXEC, K_READ, K_WRITE };

struct chan {
  uint32_t id;
  int kind;
  pid_t pid;       /* exec: the command (its own session and process group) */
  int exited, code;
  int pty;
  int in_fd;       /* exec: stdin pipe or a dup of the pty master; write: the file */
  int out_fd[2];   /* exec: stdout, stderr (pty: the master, -1); read: the file, -1 */
  struct sb in;    /* stdin bytes not yet written to the command */
  int in_eof;
  uint64_t credit; /* bytes we may still send the host on this channel */
  struct chan *next;
};

static struct chan *chans;

static struct chan *find_chan(uint32_t id) {
  for (struct chan *c = chans; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static struct chan *new_chan(uint32_t id, int kind) {
  struct chan *c = calloc(1, sizeof *c);
  c->id = id, c->kind = kind, c->in_fd = c->out_fd[0] = c->out_fd[1] = -1;
  c->credit = INITIAL_WINDOW;
  c->next = chans;
  chans = c;
  return c;
}

static void free_chan(struct chan *c) {
  for (struct chan **p = &chans; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  if (c->in_fd >= 0) close(c->in_fd);
  for (int i = 0; i < 2; i++)
    if (c->out_fd[i] >= 0) close(c->out_fd[i]);
  sb_free(&c->in);
  free(c);
}

/* An exec ends (EXIT) once the command was reaped and its output read to the end. */
static void maybe_finish(struct chan *c) {
  if (c->kind != K_EXEC || !c->exited || c->out_fd[0] >= 0 || c->out_fd[1] >= 0) return;
  send_i32(c->id, A_EXIT, c->code);
  free_chan(c);
}

/* Drops every channel: the host went away or began a new session. Commands are killed. */
static void reset_session(void) {
  while (chans) {
    struct chan *c = chans;
    if (c->kind == K_EXEC && !c->exited && c->pid > 0) {
      kill(-c->pid, SIGKILL);
      kill(c->pid, SIGKILL);
    }
    free_chan(c);
  }
  inq.len = 0;
  /* A frame half written stays whole: the host looks for the HELLO reply's magic anyway. */
  outq.len = outq_off = 0;
}

/* ---- exec ---- */

static void child_fail(const char *what, const char *arg, int code) {
  dprintf(2, "lodge-agent: %s %s: %s\r\n", what, arg, strerror(errno));
  _exit(code);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/*
 * EXEC payload: u32 flags (1: pty), i32 uid, i32 gid (-1: root), u16 cols, u16 rows,
 * u32 argc, u32 envc, then NUL-terminated strings: cwd, argv[argc], env[envc] ("K=V").
 */
static void do_exec(uint32_t id, const unsigned char *p, uint32_t len, sigset_t *oldmask) {
  if (find_chan(id)) return send_error(id, EBUSY, "channel in use");
  if (len < 24) return send_error(id, EINVAL, "short exec request");
  uint32_t flags = get_u32(p), argc = get_u32(p + 16), envc = get_u32(p + 20);
  int32_t uid = (int32_t)get_u32(p + 4), gid = (int32_t)get_u32(p + 8);
  unsigned short cols = p[12] | p[13] << 8, rows = p[14] | p[15] << 8;
  const char *s = (const char *)p + 24, *end = (const char *)p + len;
  size_t total = 1 + (size_t)argc + envc;
  if (argc == 0 || argc > 65536 || envc > 65536) return send_error(id, EINVAL, "bad exec request");
  char **strs = calloc(total, sizeof *strs);
  size_t k = 0;
  while (k < total && s < end) {
    const char *nul = memchr(s, 0, (size_t)(end - s));
    if (!nul) break;
    strs[k++] = (char *)s;
    s = nul + 1;
  }
  if (k != total) {
    free(strs);
    return send_error(id, EINVAL, "bad exec request");
  }
  char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
  for (uint32_t i = 0; i < argc; i++) argv[i] = strs[1 + i];
  for (uint32_t i = 0; i < envc; i++) envp[i] = strs[1 + argc + i];
  const char *cwd = strs[0];

  int pty = flags & 1, master = -1, in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  char slave[128] = "";
  if (pty) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave)) {
      int e = errno;
      if (master >= 0) close(master);
      free(strs), free(argv), free(envp);
      return send_error(id, e, "pty");
    }
    struct winsize ws = {.ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80};
    ioctl(master, TIOCSWINSZ, &ws);
  } else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (in[i] >= 0) close(in[i]);
      if (out[i] >= 0) close(out[i]);
    }
    free(strs), free(argv), free(envp);
    return send_error(id, e, "pipe");
  }

  pid_t pid = fork();
  if (pid == 0) {
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, oldmask, NULL);
    setsid();
    if (pty) {
      int fd = open(slave, O_RDWR);
      if (fd < 0) child_fail("cannot open", slave, 127);
      ioctl(fd, TIOCSCTTY, 0);
      for (int i = 0; i < 3; i++) dup2(fd, i);
    } else {
      dup2(in[0], 0), dup2(out[1], 1), dup2(err[1], 2);
    }
    syscall(SYS_close_range, 3, ~0U, 0);
    if (gid >= 0 || uid >= 0) {
      if (setgroups(0, NULL) < 0) child_fail("cannot drop groups for", argv[0], 127);
      if (gid >= 0 && setgid((gid_t)gid) < 0) child_fail("cannot switch to group of", argv[0], 127);
      if (uid >= 0 && setuid((uid_t)uid) < 0) child_fail("cannot switch to user of", argv[0], 127);
    }
    if (chdir(cwd) < 0) child_fail("cannot enter directory", cwd, 127);
    environ = envp; /* execvp searches the command's own PATH */
    execvp(argv[0], argv);
    child_fail("cannot run", argv[0], errno == ENOENT ? 127 : 126);
  }
  int fork_err = errno;
  free(strs), free(argv), free(envp);
  if (!pty) close(in[0]), close(out[1]), close(err[1]);
  if (pid < 0) {
    if (pty) close(master);
    else close(in[1]), close(out[0]), close(err[0]);
    return send_error(id, fork_err, "fork");
  }
  struct chan *c = new_chan(id, K_EXEC);
  c->pid = pid, c->pty = pty;
  if (pty) {
    c->out_fd[0] = master;
    c->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
  } else {
    c->in_fd = in[1], c->out_fd[0] = out[0], c->out_fd[1] = err[0];
  }
  for (int i = 0; i < 2; i++)
    if (c->out_fd[i] >= 0) set_nonblock(c->out_fd[i]);
  if (c->in_fd >= 0) set_nonblock(c->in_fd);
  send_i32(id, A_STARTED, pid);
}

/* Reads what a channel's output has (within its window); EOF (or EIO on a pty) closes it. */
static void read_output(struct chan *c, int i, int draining) {
  static char buf[CHUNK];
  while (c->out_fd[i] >= 0 && c->credit > 0) {
    size_t want = c->credit < sizeof buf ? (size_t)c->credit : sizeof buf;
    ssize_t n = read(c->out_fd[i], buf, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && !draining) return;
    if (n <= 0) {
      if (n < 0 && c->kind == K_READ && errno != EAGAIN) {
        send_error(c->id, errno, "read");
        free_chan(c);
        return;
      }
      close(c->out_fd[i]);
      c->out_fd[i] = -1;
      send_frame(c->id, i ? A_STDERR : A_STDOUT, NULL, 0);
      if (c->kind == K_READ) free_chan(c);
      else maybe_finish(c);
      return;
    }
    send_frame(c->id, i ? A_STDERR : A_STDOUT, buf, (size_t)n);
    c->credit -= (size_t)n;
    if (c->kind == K_EXEC && !draining) return; /* one chunk per turn: streams interleave fairly */
  }
}

static void write_input(struct chan *c) {
  size_t done = 0;
  while (c->in_fd >= 0 && done < c->in.len) {
    ssize_t n = write(c->in_fd, c->in.d + done, c->in.len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) { /* the command closed its stdin: drop what is left */
      close(c->in_fd);
      c->in_fd = -1;
      done = c->in.len;
      break;
    }
    done += (size_t)n;
  }
  if (done) {
    memmove(c->in.d, c->in.d + done, c->in.len - done);
    c->in.len -= done;
    send_i32(c->id, A_WINDOW, (int32_t)done);
  }
  if (c->in_eof && c->in.len == 0 && c->in_fd >= 0) {
    close(c->in_fd);
    c->in_fd = -1;
  }
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (struct chan *c = chans; c; c = c->next) {
      if (c->kind != K_EXEC || c->pid != pid) continue;
      c->exited = 1;
      c->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      /* A pty's output is whatever is buffered now: a background job keeping the terminal
         open must not hold the exec. Pipes are read to their end, as a shell would. */
      if (c->pty && c->out_fd[0] >= 0) read_output(c, 0, 1); /* finishes when it closes */
      else maybe_finish(c);
      break;
    }
  }
}

/* ---- requests ---- */

static int64_t get_i32(const unsigned char *p) { return (int32_t)get_u32(p); }

/* The n-th NUL-terminated string of a payload after `skip` bytes, or NULL. */
static const char *nth_string(const unsigned char *p, uint32_t len, uint32_t skip, int n) {
  const char *s = (const char *)p + skip, *end = (const char *)p + len;
  if (skip > len) return NULL;
  for (int i = 0;; i++) {
    const char *nul = memchr(s, 0, (size_t)(end - s));
    if (!nul) return NULL;
    if (i == n) return s;
    s = nul + 1;
  }
}

static void handle(uint32_t id, uint8_t type, const unsigned char *p, uint32_t len, sigset_t *oldmask) {
  struct chan *c = find_chan(id);
  const char *path;
  switch (type) {
  case H_HELLO: {
    if (len < 16 || memcmp(p, HELLO_MAGIC, 8)) return;
    reset_session();
    struct sb b = {0};
    sb_add(&b, REPLY_MAGIC, 8);
    sb_add(&b, p + 8, 8); /* the host's nonce */
    info_hello(&b);
    send_frame(id, A_HELLO, b.d, b.len);
    sb_free(&b);
    return;
  }
  case H_EXEC: return do_exec(id, p, len, oldmask);
  case H_DATA:
    if (!c) return;
    if (c->kind == K_WRITE) {
      if (len == 0) {
        int r = close(c->in_fd);
        c->in_fd = -1;
        if (r < 0) send_error(id, errno, "close");
        else send_frame(id, A_OK, NULL, 0);
        return free_chan(c);
      }
      for (uint32_t off = 0; off < len;) {
        ssize_t n = write(c->in_fd, p + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          send_error(id, errno, "write");
          return free_chan(c);
        }
        off += (uint32_t)n;
      }
      send_i32(id, A_WINDOW, (int32_t)len);
    } else if (c->kind == K_EXEC) {
      if (len == 0) c->in_eof = 1;
      else if (c->in_fd >= 0) sb_add(&c->in, p, len);
      else send_i32(id, A_WINDOW, (int32_t)len); /* stdin is closed: the bytes are dropped */
      write_input(c);
    }
    return;
  case H_SIGNAL:
    if (c && c->kind == K_EXEC && !c->exited && len >= 4) kill(c->pid, (int)get_i32(p));
    return;
  case H_RESIZE:
    if (c && c->pty && c->out_fd[0] >= 0 && len >= 4) {
      struct winsize ws = {.ws_col = p[0] | p[1] << 8, .ws_row = p[2] | p[3] << 8};
      ioctl(c->out_fd[0], TIOCSWINSZ, &ws);
    }
    return;
  case H_WINDOW:
    if (c && len >= 4) c->credit += get_u32(p);
    return;
  case H_CLOSE:
    if (!c) return;
    if (c->kind == K_EXEC && !c->exited) kill(-c->pid, SIGKILL), kill(c->pid, SIGKILL);
    return free_chan(c);
  case H_STAT:
    if ((path = nth_string(p, len, 0, 0))) file_stat(id, path);
    return;
  case H_MKDIR: /* i32 uid, gid, mode (-1: default), path */
    if (len >= 12 && (path = nth_string(p, len, 12, 0))) file_mkdir(id, path, get_i32(p), get_i32(p + 4), get_i32(p + 8));
    return;
  case H_SYMLINK: /* i32 uid, gid, target, path */
    if (len >= 8 && (path = nth_string(p, len, 8, 1))) file_symlink(id, nth_string(p, len, 8, 0), path, get_i32(p), get_i32(p + 4));
    return;
  case H_DELETE:
    if ((path = nth_string(p, len, 0, 0))) file_delete(id, path);
    return;
  case H_READ: {
    if (c || !(path = nth_string(p, len, 0, 0))) return;
    int fd = file_open_read(id, path);
    if (fd < 0) return;
    set_nonblock(fd);
    new_chan(id, K_READ)->out_fd[0] = fd;
    return;
  }
  case H_WRITE: { /* u32 flags (1: append), i32 uid, gid, mode, path */
    if (c || len < 16 || !(path = nth_string(p, len, 16, 0))) return;
    int fd = file_open_write(id, path, get_i32(p + 4), get_i32(p + 8), get_i32(p + 12), get_u32(p) & 1);
    if (fd >= 0) new_chan(id, K_WRITE)->in_fd = fd;
    return;
  }
  case H_STATE: {
    struct sb b = {0};
    info_state(&b);
    send_frame(id, A_OK, b.d, b.len);
    sb_free(&b);
    return;
  }
  }
}

/* Frames out of inq; garbage (a session cut mid-frame) is skipped up to the next HELLO. */
static void parse_input(sigset_t *oldmask) {
  size_t off = 0;
  while (inq.len - off >= HDR) {
    const unsigned char *h = (const unsigned char *)inq.d + off;
    uint32_t len = get_u32(h), id = get_u32(h + 4);
    uint8_t type = h[8];
    int known = (type >= H_HELLO && type <= H_CLOSE) || (type >= H_STAT && type <= H_STATE);
    if (len > MAX_PAYLOAD || !known) {
      /* Not a frame: resume at the header of the next HELLO, or wait for more bytes. */
      const char *from = inq.d + off + HDR + 1, *m = NULL;
      if (from < inq.d + inq.len) m = memmem(from, (size_t)(inq.d + inq.len - from), HELLO_MAGIC, 8);
      if (m) {
        off = (size_t)(m - inq.d) - HDR;
        continue;
      }
      size_t keep = HDR + 8; /* the magic may be cut by the end of the buffer */
      off = inq.len > keep && inq.len - keep > off ? inq.len - keep : off + 1;
      break;
    }
    if (inq.len - off < HDR + len) break;
    handle(id, type, h + HDR, len, oldmask);
    if (inq.len == 0) return; /* a HELLO reset the session and emptied inq */
    off += HDR + len;
  }
  memmove(inq.d, inq.d + off, inq.len - off);
  inq.len -= off;
}

/* ---- the port ---- */

static int open_port(const char *name) {
  if (name[0] == '/') return open(name, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  char p[512];
  snprintf(p, sizeof p, "/dev/virtio-ports/%s", name);
  int fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) return fd;
  /* No udev: find the port by its name in sysfs; devtmpfs has /dev/vportNpM. */
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char q[512], buf[256] = "";
    snprintf(q, sizeof q, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(q, "re");
    if (!f) continue;
    if (fgets(buf, sizeof buf, f)) buf[strcspn(buf, "\n")] = 0;
    fclose(f);
    if (strcmp(buf, name)) continue;
    snprintf(p, sizeof p, "/dev/%s", e->d_name);
    fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    break;
  }
  if (d) closedir(d);
  return fd;
}

static void read_conf(const char *file, char *portname, size_t n) {
  FILE *f = fopen(file, "re");
  char line[200];
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!strncmp(line, "port=", 5)) snprintf(portname, n, "%s", line + 5);
  }
  if (f) fclose(f);
}

int main(int argc, char **argv) {
  char portname[256] = "org.lodge.agent.0";
  int fd_arg = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--conf")) read_conf(argv[i + 1], portname, sizeof portname);
    else if (!strcmp(argv[i], "--port")) snprintf(portname, sizeof portname, "%s", argv[i + 1]);
    else if (!strcmp(argv[i], "--fd")) fd_arg = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: lodge-agent [--conf FILE] [--port NAME|PATH] [--fd N]\n");
      return 2;
    }
  }
  prctl(PR_SET_NAME, "lodge-agent", 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  umask(022);
  if (fd_arg >= 0) {
    port = fd_arg;
    set_nonblock(port);
  } else {
    /* The port may appear a moment after the agent starts (its module still loading). */
    for (int tries = 0; (port = open_port(portname)) < 0; tries++) {
      if (tries == 100) {
        fprintf(stderr, "lodge-agent: cannot open the virtio-serial port %s: %s\n", portname, strerror(errno));
        return 1;
      }
      usleep(100 * 1000);
    }
  }
  sigset_t mask, oldmask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, &oldmask);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  struct pollfd *pf = NULL;
  struct chan **owner = NULL;
  int *which = NULL;
  size_t cap = 0;
  for (;;) {
    size_t n = 0, want = 2;
    for (struct chan *c = chans; c; c = c->next) want += 3;
    if (want > cap) {
      cap = want * 2;
      pf = realloc(pf, cap * sizeof *pf), owner = realloc(owner, cap * sizeof *owner), which = realloc(which, cap * sizeof *which);
    }
    pf[n] = (struct pollfd){.fd = sfd, .events = POLLIN}, owner[n++] = NULL;
    if (!port_hup) pf[n] = (struct pollfd){.fd = port, .events = POLLIN | (outq.len > outq_off ? POLLOUT : 0)}, owner[n++] = NULL;
    for (struct chan *c = chans; c; c = c->next) {
      for (int i = 0; i < 2; i++)
        if (c->out_fd[i] >= 0 && c->credit > 0) pf[n] = (struct pollfd){.fd = c->out_fd[i], .events = POLLIN}, owner[n] = c, which[n++] = i;
      if (c->kind == K_EXEC && c->in_fd >= 0 && c->in.len) pf[n] = (struct pollfd){.fd = c->in_fd, .events = POLLOUT}, owner[n] = c, which[n++] = 2;
    }
    int r = poll(pf, n, port_hup ? 200 : -1);
    if (r < 0 && errno != EINTR) return 1;
    if (port_hup) { /* is a host there again? */
      struct pollfd q = {.fd = port, .events = POLLIN};
      if (poll(&q, 1, 0) >= 0 && !(q.revents & POLLHUP)) port_hup = 0;
    }
    if (r <= 0) continue;
    if (pf[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {}
      reap();
    }
    /* Channel events first: handling the port may free channels. */
    for (size_t i = (port_hup ? 1 : 2); i < n; i++) {
      if (!pf[i].revents) continue;
      struct chan *c = owner[i], *x;
      for (x = chans; x && x != c; x = x->next) {}
      if (!x) continue; /* freed earlier in this turn */
      if (pf[i].fd != (which[i] == 2 ? c->in_fd : c->out_fd[which[i]])) continue;
      if (which[i] == 2) write_input(c);
      else read_output(c, which[i], 0);
    }
    if (!port_hup && n > 1 && pf[1].fd == port) {
      short ev = pf[1].revents;
      if (ev & POLLIN) {
        for (;;) {
          char buf[65536];
          ssize_t got = read(port, buf, sizeof buf);
          if (got < 0 && errno == EINTR) continue;
          if (got > 0) {
            sb_add(&inq, buf, (size_t)got);
            if (got == (ssize_t)sizeof buf) continue;
          }
          if (got == 0) ev |= POLLHUP;
          break;
        }
        parse_input(&oldmask);
      }
      if ((ev & POLLHUP) && !(ev & POLLIN)) {
        port_hup = 1;
        reset_session();
        if (fd_arg >= 0) return 0; /* a descriptor does not come back */
      } else if (ev & POLLHUP) {
        /* read the rest first; the hang-up shows again next turn */
      }
    }
    if (!port_hup) flush_out();
  }
}
