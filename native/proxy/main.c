/*
 * lodge-proxy: the forwarder of one proxy device of one running container.
 *
 * usage: lodge-proxy --pid INIT --pidfile FILE --log FILE --bind host|instance
 *                    --listen ADDR --connect ADDR [--uid N] [--gid N] [--mode OCTAL]
 *                    [--security-uid N] [--security-gid N] [--proxy-protocol] [--name LABEL]
 *   ADDR  tcp:IP:PORTS, udp:IP:PORTS (PORTS: 80, 80-90, 80,443) or unix:/path, unix:@name
 *   --bind         which side listens: the host (default) or the instance of init INIT
 *   --uid/--gid/--mode   owner and mode of a listening unix socket file (the listening side's ids)
 *   --security-uid/gid   who the instance side acts as once its listeners exist (instance ids)
 * Listen ports map one to one onto connect ports, or all onto one.
 *
 * The command returns once the forwarder listens (exit 0), or with the reason it cannot on
 * stderr (exit 1; 2 for bad arguments). The forwarder itself runs on, detached in its own
 * session so it outlives whoever started it: it writes its pid to FILE, its errors to the log,
 * and exits — removing the socket files it made and its pidfile — on SIGTERM, SIGINT or SIGHUP,
 * or when INIT exits.
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *label = "proxy";
static int ready_fd = -1; /* to the starting command, until the forwarder runs */

void logmsg(const char *fmt, ...) {
  char when[32];
  time_t t = time(NULL);
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  char line[1024];
  int n = snprintf(line, sizeof line, "%s lodge-proxy[%d] %.200s: ", when, (int)getpid(), label);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  strcat(line, "\n");
  if (write(STDERR_FILENO, line, strlen(line)) < 0) { /* nowhere else to tell */
  }
}

static void __attribute__((noreturn)) usage(const char *why) {
  fprintf(stderr, "lodge-proxy: %s\n", why);
  exit(2);
}

static long num(const char *s, int base, long max, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, base);
  if (errno || end == s || *end || v < 0 || v > max) usage(what);
  return v;
}

/* Before the forwarder reports ready, a failure goes back to the starting command. */
static void __attribute__((noreturn)) setup_failed(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  logmsg("%s", msg);
  if (ready_fd >= 0 && write(ready_fd, msg, strlen(msg)) < 0) {
  }
  _exit(1); /* the helper sees its pair close and removes what it made */
}

static void write_pidfile(const char *path) {
  char tmp[PATH_MAX], text[32];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) setup_failed("pidfile path too long");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int len = snprintf(text, sizeof text, "%d\n", (int)getpid());
  if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) < 0 || rename(tmp, path) < 0)
    setup_failed("writing the pidfile: %s", strerror(errno));
}

static void remove_pidfile(const char *path) {
  char text[32] = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n > 0 && atoi(text) == (int)getpid()) unlink(path);
}

/* The starting command: waits for the forwarder's word, and passes it on. */
static int __attribute__((noreturn)) wait_ready(int fd, pid_t child) {
  char msg[512];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof msg - 1 && ((n = read(fd, msg + len, sizeof msg - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0) len += (size_t)n;
  msg[len] = 0;
  if (len >= 2 && !strncmp(msg, "OK", 2)) exit(0);
  fprintf(stderr, "%s\n", len ? msg : "the forwarder died while starting");
  waitpid(child, NULL, WNOHANG);
  exit(1);
}

int main(int argc, char **argv) {
  long pid = -1, secuid = 0, secgid = 0;
  struct sockmode sm = {-1, -1, -1};
  const char *pidfile = NULL, *logfile = NULL, *listen_spec = NULL, *connect_spec = NULL, *bind = "host";
  int proxy_protocol = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--proxy-protocol")) {
      proxy_protocol = 1;
      continue;
    }
    if (i + 1 >= argc) usage("a flag lacks its value");
    const char *v = argv[++i];
    if (!strcmp(a, "--pid")) pid = num(v, 10, INT_MAX, "bad --pid");
    else if (!strcmp(a, "--pidfile")) pidfile = v;
    else if (!strcmp(a, "--log")) logfile = v;
    else if (!strcmp(a, "--bind")) bind = v;
    else if (!strcmp(a, "--listen")) listen_spec = v;
    else if (!strcmp(a, "--connect")) connect_spec = v;
    else if (!strcmp(a, "--uid")) sm.uid = num(v, 10, 0xfffffffeL, "bad --uid");
    else if (!strcmp(a, "--gid")) sm.gid = num(v, 10, 0xfffffffeL, "bad --gid");
    else if (!strcmp(a, "--mode")) sm.mode = num(v, 8, 0777, "bad --mode (octal, up to 0777)");
    else if (!strcmp(a, "--security-uid")) secuid = num(v, 10, 0xfffffffeL, "bad --security-uid");
    else if (!strcmp(a, "--security-gid")) secgid = num(v, 10, 0xfffffffeL, "bad --security-gid");
    else if (!strcmp(a, "--name")) label = v;
    else usage("unknown flag");
  }
  if (pid <= 0 || !pidfile || !logfile || !listen_spec || !connect_spec) usage("--pid, --pidfile, --log, --listen and --connect are required");
  enum side lside;
  if (!strcmp(bind, "host")) lside = SIDE_HOST;
  else if (!strcmp(bind, "instance")) lside = SIDE_INSIDE;
  else usage("--bind is host or instance");

  char err[256];
  struct endpoint *ls, *cs;
  size_t nl, nc;
  if (parse_endpoints(listen_spec, &ls, &nl, err, sizeof err) < 0 || parse_endpoints(connect_spec, &cs, &nc, err, sizeof err) < 0)
    usage(err);
  if (nc != 1 && nc != nl) usage("the connect address needs one port, or as many as the listen address");
  struct relay_config cfg = {.listen_side = lside, .proxy_protocol = proxy_protocol, .nmaps = nl};
  if (!(cfg.maps = calloc(nl, sizeof *cfg.maps))) usage("out of memory");
  for (size_t i = 0; i < nl; i++) cfg.maps[i] = (struct mapping){.listen = ls[i], .connect = cs[nc == 1 ? 0 : i], .lfd = -1};

  int logfd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
  if (logfd < 0) usage("cannot open the log file");
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) usage("pipe");
  pid_t child = fork();
  if (child < 0) usage("fork");
  if (child > 0) {
    close(ready[1]);
    wait_ready(ready[0], child);
  }

  /* The forwarder: its own session, no terminal, stdio away from whoever started us. */
  close(ready[0]);
  ready_fd = ready[1];
  setsid();
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(logfd, 2) < 0) setup_failed("redirecting stdio failed");
  close(devnull);
  close(logfd);
  if (chdir("/") < 0) setup_failed("chdir /: %s", strerror(errno));
  prctl(PR_SET_DUMPABLE, 0);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM), sigaddset(&stops, SIGINT), sigaddset(&stops, SIGHUP);
  sigprocmask(SIG_BLOCK, &stops, NULL);
  int sigfd = signalfd(-1, &stops, SFD_CLOEXEC | SFD_NONBLOCK);
  int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (sigfd < 0) setup_failed("signalfd: %s", strerror(errno));
  if (pidfd < 0) setup_failed("the instance's init (pid %ld) is not running", pid);

  if ((cfg.helper = inside_start((pid_t)pid, err, sizeof err)) < 0) setup_failed("%s", err);
  for (size_t i = 0; i < nl; i++) {
    struct mapping *m = &cfg.maps[i];
    const char *what = "listen";
    int e = 0;
    if (lside == SIDE_HOST) {
      m->lfd = open_endpoint(OP_LISTEN, &m->listen, &sm, &what);
      e = errno;
      if (m->lfd >= 0) remember_file(&m->made, &m->listen);
    } else {
      m->lfd = inside_request(cfg.helper, OP_LISTEN, &m->listen, &sm, 0, 0, &what, &e);
    }
    if (m->lfd < 0) {
      char s[160];
      for (size_t j = 0; j < i; j++) remove_file(&cfg.maps[j].made);
      setup_failed("cannot listen on %s (%s): %s: %s", endpoint_str(&m->listen, s, sizeof s),
                   lside == SIDE_HOST ? "host" : "instance", what, strerror(e));
    }
  }
  const char *what = "drop";
  int e = 0;
  if (inside_request(cfg.helper, OP_DROP, NULL, NULL, secuid, secgid, &what, &e) < 0) {
    for (size_t i = 0; i < nl; i++) remove_file(&cfg.maps[i].made);
    setup_failed("%s: %s", what, strerror(e));
  }
  write_pidfile(pidfile);
  if (write(ready_fd, "OK", 2) != 2) logmsg("the starting command is gone");
  close(ready_fd);
  ready_fd = -1;
  logmsg("forwarding %s (%s) to %s", listen_spec, bind, connect_spec);

  int status = relay_run(&cfg, pidfd, sigfd);

  for (size_t i = 0; i < nl; i++) remove_file(&cfg.maps[i].made);
  remove_pidfile(pidfile);
  close(cfg.helper); /* the helper removes the instance's socket files and exits */
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  return status;
}
