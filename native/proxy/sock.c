/*
 * Making the sockets of one side, in whatever namespaces the calling process is in: the
 * forwarder itself for the host side, the helper for the instance side.
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A socket file left by an earlier run is replaced; one that still answers is in use. */
static int clear_stale_socket(const struct endpoint *ep, const char *path, const char **what) {
  struct stat st;
  if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : (*what = "stat the socket path", -1);
  if (!S_ISSOCK(st.st_mode)) {
    errno = EEXIST;
    *what = "something that is not a socket is at the socket path";
    return -1;
  }
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return *what = "socket", -1;
  int r = connect(probe, (const struct sockaddr *)&ep->sa, ep->salen);
  int err = errno;
  close(probe);
  if (r == 0 || err == EAGAIN) {
    errno = EADDRINUSE;
    *what = "another process listens on the socket path";
    return -1;
  }
  if (unlink(path) < 0 && errno != ENOENT) return *what = "remove the stale socket", -1;
  return 0;
}

static int listen_on(int fd, const struct endpoint *ep, const struct sockmode *sm, const char **what) {
  const char *path = endpoint_path(ep);
  if (ep->family != AF_UNIX) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return *what = "SO_REUSEADDR", -1;
  }
  if (path && clear_stale_socket(ep, path, what) < 0) return -1;
  /* The socket file gets its mode as bind creates it: nothing can open it before chmod. */
  mode_t old = umask(path && sm && sm->mode >= 0 ? (mode_t)(~sm->mode & 0777) : 0022);
  int r = bind(fd, (const struct sockaddr *)&ep->sa, ep->salen);
  int err = errno;
  umask(old);
  if (r < 0) return errno = err, *what = "bind", -1;
  if (path && sm && (sm->uid >= 0 || sm->gid >= 0) &&
      fchownat(AT_FDCWD, path, (uid_t)sm->uid, (gid_t)sm->gid, AT_SYMLINK_NOFOLLOW) < 0) {
    err = errno;
    unlink(path);
    return errno = err, *what = "chown the socket", -1;
  }
  if (ep->socktype == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) return *what = "listen", -1;
  return 0;
}

int open_endpoint(int op, const struct endpoint *ep, const struct sockmode *sm, const char **what) {
  int fd = socket(ep->family, ep->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return *what = "socket", -1;
  if (op == OP_LISTEN) {
    if (listen_on(fd, ep, sm, what) < 0) {
      int err = errno;
      close(fd);
      return errno = err, -1;
    }
    return fd;
  }
  if (ep->family != AF_UNIX && ep->socktype == SOCK_STREAM) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  /* Non-blocking: a TCP connect completes in the relay (EINPROGRESS); unix and UDP at once. */
  if (connect(fd, (const struct sockaddr *)&ep->sa, ep->salen) < 0 && errno != EINPROGRESS) {
    int err = errno == EAGAIN ? ECONNREFUSED : errno; /* a unix listener with a full backlog */
    close(fd);
    *what = "connect";
    return errno = err, -1;
  }
  return fd;
}

void remember_file(struct madefile *f, const struct endpoint *ep) {
  const char *path = endpoint_path(ep);
  struct stat st;
  f->path[0] = 0;
  if (!path || lstat(path, &st) < 0) return;
  strncpy(f->path, path, sizeof f->path - 1);
  f->path[sizeof f->path - 1] = 0;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
}

void remove_file(const struct madefile *f) {
  struct stat st;
  if (f->path[0] && lstat(f->path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino) unlink(f->path);
}
