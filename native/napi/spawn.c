/*
 * spawn: starts a program without forking the daemon. Node's child_process forks, and a fork
 * copies the page tables of the whole daemon (~3 ms at 75 MB, ~14 ms at 250 MB, with the event
 * loop blocked throughout); posix_spawn here is a vfork (shared memory, no copy), so a spawn
 * costs the same whatever the daemon's size. The exit is waited for on a small thread of its
 * own (waitpid on that one pid: libuv only reaps the pids it started itself) and reported to
 * JavaScript through a thread-safe function.
 *
 * spawn(file, argv, env, fds, cwd, setsid, onExit) → pid
 *   file   absolute path of the program (the caller resolves PATH), or a descriptor of it (a
 *          sealed copy, sealed.c): run as /proc/self/fd/N of a copy above every target;
 *   fds    fds[i] becomes the child's descriptor i; -1 gives it /dev/null;
 *   cwd    directory to run in, or null;
 *   setsid true: a session (and process group) of its own;
 *   onExit (code, signal): code null when a signal ended it, signal null otherwise.
 * Failing to start (no such file, not executable) throws with errno's text and `code`.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FDS 64
#define MAX_STRINGS 4096

struct waiter {
  pid_t pid;
  int status;
  napi_threadsafe_function tsfn;
};

static napi_value fail(napi_env env, int err, const char *what) {
  char msg[512];
  const char *code = err == ENOENT ? "ENOENT" : err == EACCES ? "EACCES" : err == ENOEXEC ? "ENOEXEC" : "ESPAWN";
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, msg);
  return NULL;
}

/* A JavaScript string as a new C string (NULL when it is not a string). */
static char *string_of(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static void free_strings(char **list) {
  if (!list) return;
  for (char **p = list; *p; p++) free(*p);
  free(list);
}

/* A JavaScript array of strings as a NULL-terminated vector; NULL on a non-string. */
static char **strings_of(napi_env env, napi_value arr) {
  uint32_t n;
  if (napi_get_array_length(env, arr, &n) != napi_ok || n > MAX_STRINGS) return NULL;
  char **out = calloc(n + 1, sizeof *out);
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    if (!(out[i] = string_of(env, v))) {
      free_strings(out);
      return NULL;
    }
  }
  return out;
}

/* On the main thread: the exit as (code, signal). */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  struct waiter *w = data;
  if (env && cb) {
    napi_value args[2], undefined;
    napi_get_null(env, &args[0]);
    napi_get_null(env, &args[1]);
    if (WIFEXITED(w->status)) napi_create_int32(env, WEXITSTATUS(w->status), &args[0]);
    else if (WIFSIGNALED(w->status)) napi_create_int32(env, WTERMSIG(w->status), &args[1]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, cb, 2, args, NULL);
  }
  free(w);
}

static void *wait_child(void *arg) {
  struct waiter *w = arg;
  napi_threadsafe_function tsfn = w->tsfn;
  while (waitpid(w->pid, &w->status, 0) < 0 && errno == EINTR) {
  }
  if (napi_call_threadsafe_function(tsfn, w, napi_tsfn_blocking) != napi_ok) free(w);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

/* Every signal back to its default in the child: Node ignores SIGPIPE, for one. */
static void default_signals(sigset_t *set) {
  sigemptyset(set);
  for (int s = 1; s < NSIG; s++) {
    if (s == SIGKILL || s == SIGSTOP || (s > 31 && s < SIGRTMIN)) continue;
    sigaddset(set, s);
  }
}

static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, env, fds, cwd, setsid, onExit)");
    return NULL;
  }
  napi_valuetype file_type;
  napi_typeof(env, argv[0], &file_type);
  int32_t exe_fd = -1;
  char *file = file_type == napi_number ? NULL : string_of(env, argv[0]);
  if (file_type == napi_number && napi_get_value_int32(env, argv[0], &exe_fd) == napi_ok && exe_fd >= 0 && (file = malloc(64))) *file = 0;
  char **args = strings_of(env, argv[1]);
  char **envp = strings_of(env, argv[2]);
  napi_valuetype cwd_type;
  napi_typeof(env, argv[4], &cwd_type);
  char *cwd = cwd_type == napi_string ? string_of(env, argv[4]) : NULL;
  bool setsid = false;
  napi_get_value_bool(env, argv[5], &setsid);
  uint32_t nfds = 0;
  napi_get_array_length(env, argv[3], &nfds);

  napi_value result = NULL;
  int devnull = -1, moved_exe = -1, moved[MAX_FDS];
  for (uint32_t i = 0; i < MAX_FDS; i++) moved[i] = -1;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  napi_threadsafe_function tsfn = NULL;

  if (!file || (exe_fd < 0 && file[0] != '/') || !args || !args[0] || !envp || nfds > MAX_FDS || (cwd_type == napi_string && !cwd)) {
    napi_throw_type_error(env, NULL, "spawn: file must be an absolute path or a descriptor; argv, env arrays of strings; at most 64 fds");
    goto out;
  }
  /*
   * Each wanted descriptor is first copied above every target (close-on-exec), then dup2'd to
   * its place in the child: dup2 clears close-on-exec on the copy, and no target overwrites a
   * source still to be copied.
   */
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    int32_t fd = -1;
    napi_get_element(env, argv[3], i, &v);
    napi_get_value_int32(env, v, &fd);
    if (fd < 0) {
      if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        fail(env, errno, "open /dev/null");
        goto out;
      }
      fd = devnull;
    }
    if ((moved[i] = fcntl(fd, F_DUPFD_CLOEXEC, MAX_FDS)) < 0) {
      fail(env, errno, "spawn: descriptor");
      goto out;
    }
    posix_spawn_file_actions_adddup2(&actions, moved[i], (int)i);
  }
  if (cwd) posix_spawn_file_actions_addchdir_np(&actions, cwd);
  if (exe_fd >= 0) {
    /* Above every target, so no dup2 replaces it before the exec reads it; close-on-exec, so
     * the program does not keep it. */
    if ((moved_exe = fcntl(exe_fd, F_DUPFD_CLOEXEC, MAX_FDS)) < 0) {
      fail(env, errno, "spawn: program descriptor");
      goto out;
    }
    snprintf(file, 64, "/proc/self/fd/%d", moved_exe);
  }

  sigset_t none, defaults;
  sigemptyset(&none);
  default_signals(&defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (setsid ? POSIX_SPAWN_SETSID : 0));

  napi_value name;
  napi_create_string_utf8(env, "lodge-spawn", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[6], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn) != napi_ok) {
    napi_throw_error(env, NULL, "spawn: onExit must be a function");
    goto out;
  }
  pid_t pid;
  int err = posix_spawn(&pid, file, &actions, &attr, args, envp);
  if (err) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    fail(env, err, file);
    goto out;
  }
  struct waiter *w = calloc(1, sizeof *w);
  pthread_attr_t ta;
  pthread_t thread;
  pthread_attr_init(&ta);
  pthread_attr_setstacksize(&ta, 64 * 1024);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  if (w) {
    w->pid = pid;
    w->tsfn = tsfn;
  }
  if (!w || pthread_create(&thread, &ta, wait_child, w) != 0) {
    /* Cannot watch it: end it rather than leave an untracked child. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    free(w);
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    pthread_attr_destroy(&ta);
    fail(env, EAGAIN, "spawn: waiter thread");
    goto out;
  }
  pthread_attr_destroy(&ta);
  napi_create_int32(env, pid, &result);

out:
  for (uint32_t i = 0; i < MAX_FDS; i++)
    if (moved[i] >= 0) close(moved[i]);
  if (devnull >= 0) close(devnull);
  if (moved_exe >= 0) close(moved_exe);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  free(file);
  free(cwd);
  free_strings(args);
  free_strings(envp);
  return result;
}

void register_spawn(napi_env env, napi_value exports) {
  napi_property_descriptor prop = {"spawn", NULL, Spawn, NULL, NULL, NULL, napi_default, NULL};
  napi_define_properties(env, exports, 1, &prop);
}
