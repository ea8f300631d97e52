/*
 * lodge: the command-line client's launcher.
 *
 * Node.js needs ~100 ms to start on a small machine, more than a whole `lxc list`. So the
 * CLI keeps one warm spare per user: a Node process that has loaded the CLI and waits on a
 * private socket (src/cli/worker.ts). This launcher hands it the command — argv, environment,
 * working directory, umask and its own stdin/stdout/stderr (SCM_RIGHTS) — then relays signals
 * to it and exits with its exit code. A spare whose command left nothing running waits for
 * the next command on the same socket, so commands run back to back pay Node's start-up once;
 * when there is none, the launcher starts one in the background.
 *
 * When no spare answers (first run, after a rebuild, after the idle timeout) the launcher runs
 * `node lodge.js` itself, as without it, and starts a spare in the background for next time;
 * LODGE_CLI_WORKER=0 means plain Node and no spare. The socket lives in a directory only the
 * user can enter ($XDG_RUNTIME_DIR/lodge, else /tmp/lodge-cli-<uid>), named after this build
 * and the caller's NODE_* variables (see node_env_hash), and both ends
 * check the peer's uid.
 *
 * Request: u32 magic 'LDG1', u32 length of the rest, u32 argc, u32 envc, u32 umask, then the
 * NUL-terminated strings cwd, argv[1..], env; fds 0, 1, 2 travel with it. Reply: i32 exit code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef LODGE_BUILD_ID
#define LODGE_BUILD_ID "dev"
#endif
#define MAGIC 0x3147444cu /* "LDG1" */

extern char **environ;
static volatile pid_t worker_pid;
static volatile sig_atomic_t relayed;

static void relay(int sig) {
  relayed = sig;
  if (worker_pid > 0) kill(worker_pid, sig);
}

/* The directory beside this executable (dist/), where lodge.js and lodge-worker.js are. */
static int self_dir(char *out, size_t size) {
  ssize_t n = readlink("/proc/self/exe", out, size - 1);
  if (n <= 0) return -1;
  out[n] = 0;
  char *slash = strrchr(out, '/');
  if (!slash) return -1;
  *slash = 0;
  return 0;
}

/* The private socket directory; 0 when it is ours alone. */
static int socket_dir(char *out, size_t size) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg == '/') snprintf(out, size, "%s/lodge", xdg);
  else snprintf(out, size, "/tmp/lodge-cli-%u", (unsigned)getuid());
  if (mkdir(out, 0700) < 0 && errno != EEXIST) return -1;
  struct stat st;
  if (lstat(out, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 0077)) return -1;
  return 0;
}

/*
 * Whether the mark of a starting spare is stale: the spare it names is dead (killed while
 * starting), or it names none long after it was made. A live one gets 30 s to come up.
 */
static int mark_stale(const char *mark) {
  struct stat st;
  if (lstat(mark, &st) < 0) return errno == ENOENT;
  long age = (long)(time(NULL) - st.st_mtime);
  char buf[32] = "";
  int fd = open(mark, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
  }
  long pid = strtol(buf, NULL, 10);
  if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH) return 1;
  return age >= (pid > 0 ? 30 : 2);
}

static void start_spare(const char *dist, const char *sock) {
  /* A spare that kept its socket after the command is waiting already. */
  if (access(sock, F_OK) == 0) return;
  /* One at a time: a mark says a spare is starting (it removes the mark once it listens). */
  char mark[PATH_MAX];
  snprintf(mark, sizeof mark, "%s.starting", sock);
  int m = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (m < 0) {
    if (errno != EEXIST || !mark_stale(mark)) return;
    unlink(mark);
    m = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (m < 0) return;
  }
  pid_t child = fork();
  if (child != 0) close(m);
  if (child > 0) waitpid(child, NULL, 0);
  if (child != 0) return;
  /* A grandchild in its own session, so it outlives us and our terminal. */
  if (fork() != 0) _exit(0);
  setsid();
  /* The mark names the spare, so a launcher can tell when it died before it listened. */
  char pid[24];
  int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (write(m, pid, (size_t)len) != len) _exit(1);
  close(m);
  /* Not the caller's directory: a spare must not keep it busy (it takes the command's own later). */
  if (chdir("/") < 0) _exit(1);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
  char script[PATH_MAX];
  snprintf(script, sizeof script, "%s/lodge-worker.js", dist);
  execlp("node", "node", script, sock, (char *)NULL);
  _exit(127);
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/*
 * Node reads its own variables (NODE_OPTIONS, NODE_EXTRA_CA_CERTS, ...) only when it starts,
 * so spares are kept apart by them: a hash (FNV-1a) of the sorted NODE_* entries names the
 * socket, and a spare serves only commands run with the very same ones.
 */
static uint64_t node_env_hash(void) {
  size_t n = 0;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "NODE_", 5) == 0) n++;
  char **vars = calloc(n + 1, sizeof *vars);
  if (!vars) return 0;
  size_t k = 0;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "NODE_", 5) == 0) vars[k++] = *e;
  qsort(vars, k, sizeof *vars, by_text);
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < k; i++)
    for (const unsigned char *c = (const unsigned char *)vars[i];; c++) {
      h = (h ^ *c) * 1099511628211ull;
      if (!*c) break;
    }
  free(vars);
  return h;
}

static int run_cold(const char *dist, int argc, char **argv) {
  char script[PATH_MAX];
  snprintf(script, sizeof script, "%s/lodge.js", dist);
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) return 1;
  args[0] = "node";
  args[1] = script;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  execvp("node", args);
  fprintf(stderr, "lodge: cannot run node: %s\n", strerror(errno));
  return 127;
}

static int append(char **buf, size_t *len, size_t *cap, const void *data, size_t n) {
  if (*len + n > *cap) {
    size_t c = *cap ? *cap : 4096;
    while (c < *len + n) c *= 2;
    char *b = realloc(*buf, c);
    if (!b) return -1;
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  return 0;
}

/* Hands the command to the spare at sock; returns its exit code, or -1 when there is none. */
static int run_warm(const char *sock, int argc, char **argv) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, sock);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    if (errno == ECONNREFUSED) unlink(sock); /* a spare that died without cleaning up */
    close(fd);
    return -1;
  }
  struct ucred cred;
  socklen_t clen = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != getuid()) {
    close(fd);
    return -1;
  }

  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");
  uint32_t envc = 0;
  for (char **e = environ; *e; e++) envc++;
  mode_t mask = umask(0);
  umask(mask);
  uint32_t head[5] = {MAGIC, 0, (uint32_t)(argc - 1), envc, (uint32_t)mask};
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int bad = append(&buf, &len, &cap, head, sizeof head);
  bad |= append(&buf, &len, &cap, cwd, strlen(cwd) + 1);
  for (int i = 1; i < argc; i++) bad |= append(&buf, &len, &cap, argv[i], strlen(argv[i]) + 1);
  for (char **e = environ; *e; e++) bad |= append(&buf, &len, &cap, *e, strlen(*e) + 1);
  if (bad) return -1;
  uint32_t rest = (uint32_t)(len - 8);
  memcpy(buf + 4, &rest, 4);

  /* Signals are for the worker from the moment it owns the command. */
  worker_pid = cred.pid;
  struct sigaction sa = {.sa_handler = relay};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  size_t sent = 0;
  while (sent < len) {
    char cbuf[CMSG_SPACE(sizeof(int) * 3)];
    struct iovec iov = {.iov_base = buf + sent, .iov_len = len - sent};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (sent == 0) {
      int fds[3] = {0, 1, 2};
      memset(cbuf, 0, sizeof cbuf);
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof fds);
      memcpy(CMSG_DATA(c), fds, sizeof fds);
    }
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* Nothing was taken over yet only if nothing was sent: then run it ourselves. */
      free(buf);
      close(fd);
      return sent == 0 ? -1 : 1;
    }
    sent += (size_t)n;
  }
  free(buf);

  int32_t code;
  size_t got = 0;
  while (got < sizeof code) {
    ssize_t n = read(fd, (char *)&code + got, sizeof code - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* Killed by a signal we passed on (Ctrl-C): end the same way, as the shell expects. */
      if (relayed && relayed != SIGWINCH) {
        signal(relayed, SIG_DFL);
        raise(relayed);
      }
      fprintf(stderr, "lodge: the command ended without an exit status\n");
      return 1;
    }
    got += (size_t)n;
  }
  return code;
}

int main(int argc, char **argv) {
  char dist[PATH_MAX - 64];
  if (self_dir(dist, sizeof dist) < 0) {
    fprintf(stderr, "lodge: cannot find where lodge is installed (/proc/self/exe)\n");
    return 1;
  }
  const char *use = getenv("LODGE_CLI_WORKER");
  if (use && strcmp(use, "0") == 0) return run_cold(dist, argc, argv);
  char dir[PATH_MAX - 64], sock[PATH_MAX];
  if (socket_dir(dir, sizeof dir) < 0) return run_cold(dist, argc, argv);
  snprintf(sock, sizeof sock, "%s/cli-%s-%016llx.sock", dir, LODGE_BUILD_ID, (unsigned long long)node_env_hash());
  int code = run_warm(sock, argc, argv);
  /* The next spare starts once this command is done, so the two do not compete for the CPU. */
  start_spare(dist, sock);
  if (code >= 0) return code;
  return run_cold(dist, argc, argv);
}
