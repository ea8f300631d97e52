/*
 * lodge-native: the few system calls Node does not offer and the daemon needs on hot paths:
 * pipes and socket pairs as raw descriptors, sending and receiving descriptors over a unix
 * socket (SCM_RIGHTS), a blocking accept. Used to hand a command's stdio to a container's exec
 * agent without a fork of the daemon, and by the CLI's warm worker (src/cli/worker.ts) to take
 * over the terminal of the `lodge` launcher; and spawn (spawn.c), starting a program without
 * forking the daemon; and openBeneath (beneath.c), opening a file an image or a container made
 * without following its links; and project ids and quotas (projquota.c); and sealed copies
 * of the programs run inside containers (sealed.c). Errors throw with errno's text.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "beneath.h"
#include "projquota.h"
#include "sealed.h"
#include "spawn.h"

#define MAX_SEND_FDS 16

static napi_value throw_errno(napi_env env, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value pair(napi_env env, int fds[2]) {
  napi_value arr, a, b;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_int32(env, fds[0], &a);
  napi_create_int32(env, fds[1], &b);
  napi_set_element(env, arr, 0, a);
  napi_set_element(env, arr, 1, b);
  return arr;
}

/* pipe() → [readFd, writeFd], close-on-exec. */
static napi_value Pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return throw_errno(env, "pipe2");
  return pair(env, fds);
}

/* socketPair() → [fd, fd], AF_UNIX stream, close-on-exec. */
static napi_value SocketPair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, "socketpair");
  return pair(env, fds);
}

/* close(fd) */
static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "close(fd): fd must be a number");
    return NULL;
  }
  close(fd);
  return NULL;
}

/*
 * sendFds(socketFd, buffer, fds[], waitMs = 0) sends the whole buffer; the descriptors travel
 * with its first byte. The socket may be non-blocking (Node owns its reading side): a full
 * buffer is waited for up to waitMs, then EAGAIN is thrown — a peer that stops reading must
 * not stall the daemon's thread.
 */
static napi_value SendFds(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t sock;
  void *data;
  size_t len;
  uint32_t nfds = 0;
  int fds[MAX_SEND_FDS];
  if (argc < 3 || napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_get_array_length(env, argv[2], &nfds) != napi_ok || nfds > MAX_SEND_FDS) {
    napi_throw_type_error(env, NULL, "sendFds(fd, buffer, fds[]): bad arguments");
    return NULL;
  }
  int32_t wait_ms = 0;
  if (argc >= 4) napi_get_value_int32(env, argv[3], &wait_ms);
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    napi_get_element(env, argv[2], i, &v);
    if (napi_get_value_int32(env, v, &fds[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "sendFds: fds must be numbers");
      return NULL;
    }
  }
  size_t sent = 0;
  int first = 1;
  while (sent < len || (first && len == 0)) {
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
    struct iovec iov = {.iov_base = (char *)data + sent, .iov_len = len - sent};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (first && nfds > 0) {
      memset(cbuf, 0, sizeof cbuf);
      msg.msg_control = cbuf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = sock, .events = POLLOUT};
        int r = wait_ms > 0 ? poll(&p, 1, wait_ms) : 0;
        if (r == 0) {
          errno = EAGAIN;
          return throw_errno(env, "sendmsg");
        }
        continue;
      }
      return throw_errno(env, "sendmsg");
    }
    first = 0;
    sent += (size_t)n;
    if (len == 0) break;
  }
  return NULL;
}


static int arg_int(napi_env env, napi_callback_info info, size_t n, int32_t *out) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < n) return -1;
  for (size_t i = 0; i < n; i++)
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) return -1;
  return 0;
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

/* The socket address of a path given from JavaScript; -1 (with a TypeError thrown) if unfit. */
static int unix_address(napi_env env, napi_callback_info info, const char *fn, struct sockaddr_un *a) {
  size_t argc = 1, len;
  napi_value argv[1];
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], a->sun_path, sizeof a->sun_path, &len) != napi_ok || len >= sizeof a->sun_path - 1) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s(path): path must be a short string", fn);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* listenUnix(path) → fd: a listening AF_UNIX stream socket (close-on-exec), mode 0600. */
static napi_value ListenUnix(napi_env env, napi_callback_info info) {
  struct sockaddr_un a;
  if (unix_address(env, info, "listenUnix", &a) < 0) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket");
  mode_t old = umask(0077);
  int r = bind(fd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  if (r < 0 || listen(fd, 8) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return throw_errno(env, "bind");
  }
  return int_value(env, fd);
}

/* acceptTimeout(fd, ms) → connected fd, or -1 when nothing came within ms. Blocks. */
static napi_value AcceptTimeout(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (arg_int(env, info, 2, a) < 0) {
    napi_throw_type_error(env, NULL, "acceptTimeout(fd, ms): bad arguments");
    return NULL;
  }
  struct pollfd p = {.fd = a[0], .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, a[1]);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return throw_errno(env, "poll");
    if (r == 0) return int_value(env, -1);
    int c = accept4(a[0], NULL, NULL, SOCK_CLOEXEC);
    if (c < 0 && (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)) continue;
    if (c < 0) return throw_errno(env, "accept");
    return int_value(env, c);
  }
}

/* peerUid(fd) → the uid of the process at the other end of a unix socket. */
static napi_value PeerUid(napi_env env, napi_callback_info info) {
  int32_t a[1];
  if (arg_int(env, info, 1, a) < 0) {
    napi_throw_type_error(env, NULL, "peerUid(fd): bad arguments");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(a[0], SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, "SO_PEERCRED");
  return int_value(env, (int32_t)cred.uid);
}

/*
 * recvMsg(fd, max) → { data: Buffer, fds: number[] }: one blocking read of up to max bytes and
 * the descriptors that came with it (close-on-exec). An empty buffer means the peer closed.
 */
static napi_value RecvMsg(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (arg_int(env, info, 2, a) < 0 || a[1] <= 0) {
    napi_throw_type_error(env, NULL, "recvMsg(fd, max): bad arguments");
    return NULL;
  }
  char *buf = malloc((size_t)a[1]);
  if (!buf) return throw_errno(env, "malloc");
  char cbuf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)a[1]};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t n;
  for (;;) {
    n = recvmsg(a[0], &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      struct pollfd p = {.fd = a[0], .events = POLLIN};
      poll(&p, 1, -1);
      continue;
    }
    free(buf);
    return throw_errno(env, "recvmsg");
  }
  napi_value result, data, fds;
  napi_create_object(env, &result);
  napi_create_buffer_copy(env, (size_t)n, buf, NULL, &data);
  free(buf);
  napi_create_array(env, &fds);
  uint32_t k = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *got = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) napi_set_element(env, fds, k++, int_value(env, got[i]));
  }
  napi_set_named_property(env, result, "data", data);
  napi_set_named_property(env, result, "fds", fds);
  return result;
}

/* dup2(old, new) */
static napi_value Dup2(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (arg_int(env, info, 2, a) < 0) {
    napi_throw_type_error(env, NULL, "dup2(old, new): bad arguments");
    return NULL;
  }
  if (dup2(a[0], a[1]) < 0) return throw_errno(env, "dup2");
  return NULL;
}

/* connectUnix(path) → fd connected to a listening unix socket (close-on-exec); throws if none. */
static napi_value ConnectUnix(napi_env env, napi_callback_info info) {
  struct sockaddr_un a;
  if (unix_address(env, info, "connectUnix", &a) < 0) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket");
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return throw_errno(env, "connect");
  }
  return int_value(env, fd);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"pipe", NULL, Pipe, NULL, NULL, NULL, napi_default, NULL},
      {"socketPair", NULL, SocketPair, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"sendFds", NULL, SendFds, NULL, NULL, NULL, napi_default, NULL},
      {"listenUnix", NULL, ListenUnix, NULL, NULL, NULL, napi_default, NULL},
      {"connectUnix", NULL, ConnectUnix, NULL, NULL, NULL, napi_default, NULL},
      {"acceptTimeout", NULL, AcceptTimeout, NULL, NULL, NULL, napi_default, NULL},
      {"peerUid", NULL, PeerUid, NULL, NULL, NULL, napi_default, NULL},
      {"recvMsg", NULL, RecvMsg, NULL, NULL, NULL, napi_default, NULL},
      {"dup2", NULL, Dup2, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  register_spawn(env, exports);
  register_beneath(env, exports);
  register_projquota(env, exports);
  register_sealed(env, exports);
  return exports;
}
