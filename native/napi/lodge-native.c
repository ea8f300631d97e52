/*
 * lodge-native: the few system calls Node does not offer and the daemon needs on hot paths:
 * pipes and socket pairs as raw descriptors, and sending descriptors over a unix socket
 * (SCM_RIGHTS). Used to hand a command's stdio to a container's exec agent without a fork
 * of the daemon. Everything is synchronous and short; errors throw with errno's text.
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
#include <unistd.h>

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
 * sendFds(socketFd, buffer, fds[]) sends the whole buffer; the descriptors travel with its
 * first byte. The socket may be non-blocking (Node owns its reading side): a full buffer is
 * waited for with poll, up to 5 s.
 */
static napi_value SendFds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
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
        int r = poll(&p, 1, 5000);
        if (r == 0) {
          errno = ETIMEDOUT;
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

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"pipe", NULL, Pipe, NULL, NULL, NULL, napi_default, NULL},
      {"socketPair", NULL, SocketPair, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"sendFds", NULL, SendFds, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
