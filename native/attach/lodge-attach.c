/*
 * lodge-attach: starts the exec agent (native/execd) inside a running container, confined as
 * lxc-attach confines what it runs there, in about a millisecond instead of lxc-attach's
 * ~25 ms (liblxc re-executes itself from a memfd, asks the monitor over its command socket,
 * parses the config and compiles the seccomp policy on every call).
 *
 *   lodge-attach --pid INIT --payload lxc.payload.NAME    (fd 0: the agent's socket, fd 3: its binary)
 *
 * Its forked child is in the container's pid namespace until it becomes the agent, so lodged
 * runs this from a sealed memfd copy, as it hands over the agent's binary (fd 3): what the
 * container can reach as /proc/PID/exe is never a host file it could write.
 *   lodge-attach --seccomp-filter PID                      (tests: PID's first filter, hex, on stdout)
 *
 * What lxc-attach (liblxc 5.0) gives an attached process, and where this takes it from:
 *   cgroups      v1: each hierarchy's lxc.payload.NAME; v2: lxc.payload.NAME/.lxc, made (if
 *                missing) as the container's root, as liblxc makes it. The path comes from
 *                init's /proc/PID/cgroup cut at lxc.payload.NAME: what init did below it
 *                (the container's own doing) is not followed.
 *   namespaces   all of init's that differ from ours (user, mnt, pid, uts, ipc, net, cgroup,
 *                time), joined at once through a pidfd, in a forked child (the pid namespace
 *                holds only for children).
 *   capabilities the bounding set of init (liblxc drops lxc.cap.drop from it at start and
 *                from an attached process); the container can only have dropped more since.
 *                Permitted and effective follow from it at exec, as for lxc-attach.
 *   ids          setgroups(0), gid and uid 0 of the container's user namespace.
 *   no_new_privs set when init has it (liblxc sets it on both from lxc.no_new_privs).
 *   seccomp      the filter liblxc installed on init: the first (oldest) of init's filters,
 *                read with PTRACE_SECCOMP_GET_FILTER (init is stopped for that instant) and
 *                installed as is. liblxc compiles the same policy into the same program for
 *                an attached process; a filter the container added later is not copied. When
 *                this process carries filters of its own (inherited from a service manager),
 *                init's oldest filter is not liblxc's: refused.
 *   LSM          none: where init carries a label (AppArmor, SELinux), this refuses, and
 *                lodged uses lxc-attach, which applies it.
 * Any doubt (no pidfd, no filter on init, init not in its payload cgroup, init cannot be
 * stopped for the read) is a refusal, never a looser start: exit 4 with a line on stderr,
 * and lodged falls back to lxc-attach. The exit status is otherwise the agent's first
 * process's, which ends (0) once the agent has left for a life under the container's init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { E_OTHER = 1, E_ENTER = 4 };
static int code_for(int err) { (void)err; return E_ENTER; }
#include "helper.h"

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static char *read_text(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) other("malloc");
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    if (cap - len < 2) buf = realloc(buf, cap *= 2);
  }
  close(fd);
  buf[len] = 0;
  return buf;
}

/* A "Key:\tvalue" line of /proc/PID/status, as text; NULL when absent. */
static const char *status_field(const char *status, const char *key) {
  size_t k = strlen(key);
  for (const char *p = status; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (!strncmp(p, key, k) && p[k] == ':') return p + k + 1;
  return NULL;
}

/* The host id that id 0 of the process's user namespace maps to (its map file's first match). */
static long host_root(pid_t pid, const char *file) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  char *map = read_text(path);
  if (!map) enter_fail(file);
  long inside, outside, count;
  for (char *line = map; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    if (sscanf(line, "%ld %ld %ld", &inside, &outside, &count) == 3 && inside <= 0 && inside + count > 0) {
      free(map);
      return outside - inside;
    }
  die(E_ENTER, "the container maps no root", 0);
}

/* ---- seccomp: the filter liblxc installed on init ------------------------------------------ */

static struct sock_fprog first_filter(pid_t pid, long count) {
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) enter_fail("ptrace seize init");
  if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) enter_fail("ptrace interrupt init");
  /* Bounded: a tracee that never stops is released when we exit. */
  int status = 0, sig = 0;
  struct timespec pause = {0, 200000};
  for (int i = 0;; i++) {
    pid_t r = waitpid(pid, &status, __WALL | WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) enter_fail("waitpid init");
    if (i > 2500) die(E_ENTER, "init did not stop for the seccomp read", 0);
    nanosleep(&pause, NULL);
  }
  if (!WIFSTOPPED(status)) die(E_ENTER, "init did not stop for the seccomp read", 0);
  /* A signal that arrived meanwhile is handed back on detach, so init still gets it. */
  if ((status >> 16) == 0) sig = WSTOPSIG(status);
  long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, count - 1, NULL);
  struct sock_filter *insns = n > 0 && n <= BPF_MAXINSNS ? calloc((size_t)n, sizeof *insns) : NULL;
  long got = insns ? ptrace(PTRACE_SECCOMP_GET_FILTER, pid, count - 1, insns) : -1;
  int err = errno;
  if (ptrace(PTRACE_DETACH, pid, 0, (void *)(long)sig) < 0) enter_fail("ptrace detach init");
  if (got != n || n <= 0) die(E_ENTER, "reading init's seccomp filter", got < 0 ? err : 0);
  return (struct sock_fprog){.len = (unsigned short)n, .filter = insns};
}

static int dump_filter(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  char *status = read_text(path);
  if (!status) enter_fail("status");
  const char *f = status_field(status, "Seccomp_filters");
  long count = f ? strtol(f, NULL, 10) : 0;
  if (count < 1) die(E_ENTER, "no seccomp filter", 0);
  struct sock_fprog prog = first_filter(pid, count);
  for (unsigned i = 0; i < prog.len; i++)
    printf("%04x %02x %02x %08x\n", prog.filter[i].code, prog.filter[i].jt, prog.filter[i].jf, prog.filter[i].k);
  return 0;
}

/* ---- cgroups ------------------------------------------------------------------------------- */

/* Where the hierarchy that holds `controllers` (v1; NULL: the unified one) is mounted at its root. */
static char *mount_of(const char *mountinfo, const char *controllers) {
  for (const char *line = mountinfo; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    char root[4096], point[4096], type[64], opts[4096];
    const char *dash = strstr(line, " - ");
    const char *eol = strchr(line, '\n');
    if (!dash || (eol && dash > eol)) continue;
    if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2) continue;
    if (sscanf(dash + 3, "%63s %*s %4095s", type, opts) != 2) continue;
    if (strcmp(root, "/") != 0 || strchr(point, '\\')) continue; /* no escaped names either */
    if (!controllers) {
      if (!strcmp(type, "cgroup2")) return strdup(point);
      continue;
    }
    if (strcmp(type, "cgroup") != 0) continue;
    /* Every controller of the line must be among the mount's options. */
    char want[256];
    snprintf(want, sizeof want, "%s", controllers);
    int all = 1;
    for (char *save, *c = strtok_r(want, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
      char padded[4200], o[4200];
      snprintf(padded, sizeof padded, ",%s,", c);
      snprintf(o, sizeof o, ",%s,", opts);
      if (!strstr(o, padded)) all = 0;
    }
    if (all) return strdup(point);
  }
  return NULL;
}

static void write_pid(const char *dir, const char *file) {
  char path[8192], pid[32];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) enter_fail("open cgroup.procs");
  int len = snprintf(pid, sizeof pid, "%d", (int)getpid());
  if (write(fd, pid, (size_t)len) != len) enter_fail("join the container's cgroup");
  close(fd);
}

/* Puts this process where lxc-attach puts the process it attaches (see the header). */
static void join_cgroups(pid_t pid, const char *payload) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
  char *cgroups = read_text(path);
  char *mountinfo = read_text("/proc/self/mountinfo");
  if (!cgroups || !mountinfo) enter_fail("read cgroups");
  size_t plen = strlen(payload);
  int joined = 0;
  for (char *line = cgroups, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = *c2 = 0;
    const char *controllers = c1 + 1, *where = c2 + 1;
    int unified = !strcmp(line, "0") && !*controllers;
    /* The payload component: "/lxc.payload.NAME" followed by the end or "/". */
    const char *hit = NULL;
    for (const char *s = strstr(where, payload); s; s = strstr(s + 1, payload))
      if (s > where && s[-1] == '/' && (s[plen] == 0 || s[plen] == '/')) {
        hit = s;
        break;
      }
    if (!hit) {
      if (unified) die(E_ENTER, "init is not in its payload cgroup", 0);
      continue; /* a v1 hierarchy liblxc made nothing in: lxc-attach leaves it too */
    }
    char *mount = mount_of(mountinfo, unified ? NULL : controllers);
    if (!mount) die(E_ENTER, "a cgroup hierarchy of init is not mounted here", 0);
    char dir[8192];
    snprintf(dir, sizeof dir, "%s%.*s", mount, (int)(hit + plen - where), where);
    free(mount);
    if (unified) {
      /* The leaf liblxc attaches to, owned (with its files) by the container's root. */
      char leaf[8300];
      snprintf(leaf, sizeof leaf, "%s/.lxc", dir);
      uid_t uid = (uid_t)host_root(pid, "uid_map");
      gid_t gid = (gid_t)host_root(pid, "gid_map");
      setfsgid(gid);
      setfsuid(uid);
      int made = mkdir(leaf, 0755);
      int err = errno;
      setfsuid(0);
      setfsgid(0);
      if (made < 0 && err != EEXIST) die(E_ENTER, "make the .lxc cgroup", err);
      write_pid(leaf, "cgroup.procs");
    } else {
      write_pid(dir, "cgroup.procs");
    }
    joined++;
  }
  if (!joined) die(E_ENTER, "init is in no payload cgroup", 0);
  free(cgroups);
  free(mountinfo);
}

/* ---- namespaces ---------------------------------------------------------------------------- */

static int differing_namespaces(pid_t pid) {
  static const struct { const char *name; int flag; } all[] = {
      {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},   {"pid", CLONE_NEWPID},       {"uts", CLONE_NEWUTS},
      {"ipc", CLONE_NEWIPC},   {"net", CLONE_NEWNET}, {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME},
  };
  int flags = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    char theirs[64], ours[64];
    struct stat a, b;
    snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)pid, all[i].name);
    snprintf(ours, sizeof ours, "/proc/self/ns/%s", all[i].name);
    int ta = stat(theirs, &a), tb = stat(ours, &b);
    if (ta < 0 && tb < 0 && errno == ENOENT) continue; /* a kernel without this namespace */
    if (ta < 0 || tb < 0) enter_fail("stat namespaces");
    if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) flags |= all[i].flag;
  }
  return flags;
}

static void drop_bounding(uint64_t keep) {
  long last = 63;
  char *text = read_text("/proc/sys/kernel/cap_last_cap");
  if (text) last = strtol(text, NULL, 10), free(text);
  for (long cap = 0; cap <= last && cap < 64; cap++)
    if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) enter_fail("drop a capability");
}

int main(int argc, char **argv) {
  /* Run from a sealed memfd (lodged's copy, see src/sys/sealed-binary.ts), the name would be the
   * descriptor's number. */
  prctl(PR_SET_NAME, "lodge-attach", 0, 0, 0);
  pid_t pid = 0;
  const char *payload = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seccomp-filter") && i + 1 < argc) return dump_filter((pid_t)parse_num(argv[++i], 10, 1 << 30, "bad pid"));
    else if (!strcmp(argv[i], "--pid") && i + 1 < argc) pid = (pid_t)parse_num(argv[++i], 10, 1 << 30, "bad pid");
    else if (!strcmp(argv[i], "--payload") && i + 1 < argc) payload = argv[++i];
    else usage("usage: lodge-attach --pid INIT --payload lxc.payload.NAME");
  }
  if (!pid || !payload || strchr(payload, '/') || strncmp(payload, "lxc.payload.", 12) != 0) usage("usage: lodge-attach --pid INIT --payload lxc.payload.NAME");

  /* The pidfd pins init: every /proc read below is checked to belong to it, and setns uses it. */
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) enter_fail("pidfd_open init");
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  char *status = read_text(path);
  if (!status) enter_fail("read init's status");
  char label[256] = "";
  snprintf(path, sizeof path, "/proc/%d/attr/current", (int)pid);
  int lfd = open(path, O_RDONLY | O_CLOEXEC);
  if (lfd >= 0) {
    ssize_t n = read(lfd, label, sizeof label - 1);
    label[n > 0 ? n : 0] = 0;
    close(lfd);
  }
  label[strcspn(label, "\n")] = 0;
  if (label[0] && strcmp(label, "unconfined") != 0) die(E_ENTER, "init carries an LSM label: lxc-attach applies it", 0);

  const char *bnd = status_field(status, "CapBnd");
  const char *nnp = status_field(status, "NoNewPrivs");
  const char *filters = status_field(status, "Seccomp_filters");
  long count = filters ? strtol(filters, NULL, 10) : 0;
  if (!bnd || !nnp || count < 1) die(E_ENTER, "init has no seccomp filter to copy", 0);
  /* Filters we carry ourselves (a service manager's) would sit under liblxc's on init too, so
   * init's first filter would not be liblxc's: then lxc-attach, which compiles the policy. */
  char *own = read_text("/proc/self/status");
  const char *own_filters = own ? status_field(own, "Seccomp_filters") : NULL;
  if (!own_filters || strtol(own_filters, NULL, 10) != 0) die(E_ENTER, "lodged runs under a seccomp filter of its own", 0);
  free(own);
  uint64_t keep = strtoull(bnd, NULL, 16);
  int no_new_privs = strtol(nnp, NULL, 10) == 1;
  struct sock_fprog filter = first_filter(pid, count);

  join_cgroups(pid, payload);
  int flags = differing_namespaces(pid);
  if (!(flags & CLONE_NEWPID) || !(flags & CLONE_NEWNS)) die(E_ENTER, "init shares our namespaces", 0);
  /* Still init, and alive: what was read above was its. */
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) enter_fail("init exited");
  if (setns(pidfd, flags) < 0) enter_fail("setns");
  close(pidfd);

  pid_t child = fork();
  if (child < 0) enter_fail("fork");
  if (child == 0) {
    drop_bounding(keep);
    if (setgroups(0, NULL) < 0) enter_fail("setgroups");
    if (setresgid(0, 0, 0) < 0) enter_fail("setresgid 0 in the container");
    if (setresuid(0, 0, 0) < 0) enter_fail("setresuid 0 in the container");
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) enter_fail("no_new_privs");
    if (chdir("/") < 0) enter_fail("chdir /");
    syscall(SYS_close_range, 4, ~0U, 0);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) < 0) enter_fail("seccomp");
    char *args[] = {"lodge-execd", NULL};
    char *env[] = {"container=lxc", NULL};
    syscall(SYS_execveat, 3, "", args, env, AT_EMPTY_PATH);
    enter_fail("exec the agent");
  }
  int st;
  while (waitpid(child, &st, 0) < 0)
    if (errno != EINTR) enter_fail("waitpid");
  return WIFEXITED(st) ? WEXITSTATUS(st) : E_ENTER;
}
