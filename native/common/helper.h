/*
 * What the small native helpers share: dying with a message and an exit code the TypeScript
 * side maps, number parsing, and opening a file of a process in /proc. A helper defines its own
 * E_OTHER / E_ENTER codes and code_for(errno) before including this file.
 *
 * The message never holds a path given by a caller: it may hold newlines, and the caller
 * knows it.
 */
#ifndef LODGE_HELPER_H
#define LODGE_HELPER_H
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static void __attribute__((noreturn, unused)) die(int code, const char *what, int err) {
  if (err) fprintf(stderr, "%s: %s\n", what, strerror(err));
  else fprintf(stderr, "%s\n", what);
  exit(code);
}
static void __attribute__((noreturn, unused)) fail(const char *what) { die(code_for(errno), what, errno); }
static void __attribute__((noreturn, unused)) other(const char *what) { die(E_OTHER, what, errno); }
static void __attribute__((noreturn, unused)) enter_fail(const char *what) { die(E_ENTER, what, errno); }
static void __attribute__((noreturn, unused)) usage(const char *why) { die(E_OTHER, why, 0); }

static long __attribute__((unused)) parse_num(const char *s, int base, long max, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, base);
  if (errno || end == s || *end || v < 0 || v > max) usage(what);
  return v;
}

/* /proc/<pid>/<rel>, close-on-exec; failing to open it means the process is not there to enter. */
static int __attribute__((unused)) open_proc(pid_t pid, const char *rel, int flags) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, rel);
  int fd = open(p, flags | O_CLOEXEC);
  if (fd < 0) enter_fail(rel);
  return fd;
}
#endif
