/*
 * The relay: one epoll loop over the listeners and every connection, level-triggered.
 *
 * A connection has two sides: 0 is the client (an accepted socket, or for a UDP listener the
 * listener itself plus the client's address: a "session"), 1 the upstream opened on the other
 * side. Each direction has one buffer, refilled only once empty; a side is watched for input
 * while its buffer is empty and for output while bytes wait for it, and not at all otherwise.
 * End of stream on one side becomes shutdown(SHUT_WR) on the other once its bytes are out (TCP
 * half-close); the connection ends when both directions have ended, or at once on a reset.
 * A datagram side has no end of stream: a datagram is relayed whole or dropped, and a UDP
 * session ends after UDP_IDLE_S seconds without traffic.
 */
#include "proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BUFSZ 65536
#define BUFCAP (BUFSZ + 256) /* room for a PROXY header before the first bytes */
#define MAX_DGRAM 65507
#define UDP_IDLE_S 120
#define MAX_SESSIONS 1024

enum wkind { W_SIGNAL, W_PIDFD, W_HELPER, W_LISTENER, W_CONN };
struct watch {
  enum wkind kind;
  void *ptr;
  int idx;
};

struct dir {
  char *buf;
  size_t off, len;
  int eof, done;
};
struct end {
  int fd;
  int dgram;    /* a datagram socket */
  int virt;     /* the UDP listener: reads arrive by dispatch, writes go to the session's peer */
  uint32_t events;
  struct watch w;
};
struct conn {
  struct end s[2];
  struct dir d[2]; /* d[i]: read from side i, to be written to side 1-i */
  int connecting, dead, session;
  struct mapping *m;
  struct sockaddr_storage peer;
  socklen_t peerlen;
  time_t last;
  struct conn *next, *prev;
};

static int epfd = -1;
static struct relay_config *cfg;
static struct conn *live, *graveyard;
static size_t nsessions;
static struct watch *lwatch;

static time_t now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* Logs a failure at most once a second, counting the ones left out. */
static void log_limited(const char *what, const struct endpoint *ep, int err) {
  static time_t last = -1;
  static unsigned skipped;
  char s[160];
  time_t t = now_s();
  if (t == last) {
    skipped++;
    return;
  }
  last = t;
  if (skipped) logmsg("%s %s: %s (and %u more failures)", what, endpoint_str(ep, s, sizeof s), strerror(err), skipped);
  else logmsg("%s %s: %s", what, endpoint_str(ep, s, sizeof s), strerror(err));
  skipped = 0;
}

static void set_interest(struct end *s, uint32_t want) {
  if (s->virt || s->fd < 0 || want == s->events) return;
  struct epoll_event ev = {.events = want, .data.ptr = &s->w};
  int op = want == 0 ? EPOLL_CTL_DEL : s->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(epfd, op, s->fd, &ev) < 0) logmsg("epoll_ctl: %s", strerror(errno));
  s->events = want;
}

static void update(struct conn *c) {
  for (int i = 0; i < 2; i++) {
    uint32_t want = 0;
    if (!c->s[i].virt && c->d[i].len == 0 && !c->d[i].eof) want |= EPOLLIN;
    if ((i == 1 && c->connecting) || c->d[1 - i].len > 0) want |= EPOLLOUT;
    set_interest(&c->s[i], want);
  }
}

/* Ends a connection; with reset, a stream peer sees a reset rather than an orderly end. */
static void conn_close(struct conn *c, int reset) {
  if (c->dead) return;
  c->dead = 1;
  for (int i = 0; i < 2; i++) {
    struct end *s = &c->s[i];
    if (s->virt || s->fd < 0) continue;
    if (reset && !s->dgram) {
      struct linger l = {.l_onoff = 1, .l_linger = 0};
      setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(s->fd); /* also leaves the epoll set */
  }
  if (c->session) nsessions--;
  if (c->prev) c->prev->next = c->next;
  else live = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = graveyard; /* freed after this round of events, which may still name it */
  graveyard = c;
}

static struct conn *conn_new(struct mapping *m, int client, int virt, int upstream) {
  struct conn *c = calloc(1, sizeof *c);
  char *bufs = malloc(2 * BUFCAP);
  if (!c || !bufs) {
    free(c), free(bufs);
    return NULL;
  }
  c->m = m;
  c->d[0].buf = bufs;
  c->d[1].buf = bufs + BUFCAP;
  c->s[0] = (struct end){.fd = client, .dgram = m->listen.socktype == SOCK_DGRAM, .virt = virt};
  c->s[1] = (struct end){.fd = upstream, .dgram = m->connect.socktype == SOCK_DGRAM};
  for (int i = 0; i < 2; i++) c->s[i].w = (struct watch){.kind = W_CONN, .ptr = c, .idx = i};
  c->connecting = m->connect.socktype == SOCK_STREAM;
  c->last = now_s();
  c->next = live;
  if (live) live->prev = c;
  live = c;
  return c;
}

static int do_read(struct conn *c, int i) {
  struct dir *d = &c->d[i];
  struct end *dst = &c->s[1 - i];
  size_t want = dst->dgram || dst->virt ? MAX_DGRAM : BUFSZ;
  ssize_t n = recv(c->s[i].fd, d->buf, want, 0);
  if (n > 0) {
    d->off = 0;
    d->len = (size_t)n;
    c->last = now_s();
  } else if (n == 0) {
    if (!c->s[i].dgram) d->eof = 1; /* an empty datagram is not an end */
  } else if (errno != EAGAIN && errno != EINTR && !c->s[i].dgram) {
    return -1; /* errors on a connected UDP socket are ICMP reports of lost datagrams */
  }
  return 0;
}

static int do_flush(struct conn *c, int i) {
  struct dir *d = &c->d[i];
  struct end *dst = &c->s[1 - i];
  if (d->len == 0 || (i == 0 && c->connecting)) return 0;
  if (dst->virt || dst->dgram) {
    ssize_t n = dst->virt ? sendto(dst->fd, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL,
                                   (struct sockaddr *)&c->peer, c->peerlen)
                          : send(dst->fd, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN && !dst->virt) return 0;
    d->len = 0; /* sent whole, or dropped as UDP may be */
    return 0;
  }
  while (d->len > 0) {
    ssize_t n = send(dst->fd, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) return 0;
      if (errno == EINTR) continue;
      return -1;
    }
    d->off += (size_t)n;
    d->len -= (size_t)n;
  }
  return 0;
}

/* Writes what can be written, passes ends of stream on, re-arms the watches. */
static void pump(struct conn *c) {
  if (do_flush(c, 0) < 0 || do_flush(c, 1) < 0) return conn_close(c, 1);
  for (int i = 0; i < 2; i++) {
    struct dir *d = &c->d[i];
    struct end *dst = &c->s[1 - i];
    if (d->len || !d->eof || d->done || (i == 0 && c->connecting)) continue;
    if (dst->dgram || dst->virt) return conn_close(c, 0); /* a datagram socket cannot half-close */
    shutdown(dst->fd, SHUT_WR);
    d->done = 1;
  }
  if (c->d[0].done && c->d[1].done) return conn_close(c, 0);
  update(c);
}

static void conn_event(struct conn *c, int i, uint32_t ev) {
  if (c->dead) return;
  if (i == 1 && c->connecting) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->s[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
      log_limited("connect to", &c->m->connect, err);
      return conn_close(c, 1);
    }
    c->connecting = 0;
  }
  if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->s[i].virt && c->d[i].len == 0 && !c->d[i].eof &&
      do_read(c, i) < 0)
    return conn_close(c, 1);
  pump(c);
}

int open_connect_side(struct relay_config *rc, const struct endpoint *ep) {
  const char *what = NULL;
  int err = 0, fd;
  if (rc->listen_side == SIDE_INSIDE) {
    fd = open_endpoint(OP_CONNECT, ep, NULL, &what);
    err = errno;
  } else {
    fd = inside_request(rc->helper, OP_CONNECT, ep, NULL, 0, 0, &what, &err);
  }
  if (fd < 0) log_limited("connect to", ep, err);
  return fd;
}

static void add_proxy_header(struct conn *c, int socktype, const struct sockaddr_storage *src, socklen_t srclen,
                             int local_fd) {
  struct sockaddr_storage dst;
  socklen_t dstlen = sizeof dst;
  if (getsockname(local_fd, (struct sockaddr *)&dst, &dstlen) < 0) dstlen = 0;
  c->d[0].off = 0;
  c->d[0].len = proxy_v2_header(c->d[0].buf, BUFCAP, socktype, src, srclen, &dst, dstlen);
}

static void pause_listener(struct mapping *m) {
  if (m->paused) return;
  logmsg("out of file descriptors: not accepting for a moment");
  epoll_ctl(epfd, EPOLL_CTL_DEL, m->lfd, NULL);
  m->paused = 1;
}

static void accept_ready(struct mapping *m) {
  for (int k = 0; k < 64; k++) {
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int fd = accept4(m->lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_listener(m);
      if (errno == ECONNABORTED || errno == EINTR) continue;
      return;
    }
    if (m->listen.family != AF_UNIX) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int up = open_connect_side(cfg, &m->connect);
    struct conn *c = up < 0 ? NULL : conn_new(m, fd, 0, up);
    if (!c) {
      if (up >= 0) close(up);
      close(fd);
      continue;
    }
    if (cfg->proxy_protocol) add_proxy_header(c, SOCK_STREAM, &peer, plen, fd);
    pump(c);
  }
}

static struct conn *find_session(struct mapping *m, const struct sockaddr_storage *peer, socklen_t plen) {
  for (struct conn *c = live; c; c = c->next)
    if (c->session && c->m == m && c->peerlen == plen && !memcmp(&c->peer, peer, plen)) return c;
  return NULL;
}

static void evict_oldest_session(void) {
  struct conn *old = NULL;
  for (struct conn *c = live; c; c = c->next)
    if (c->session && (!old || c->last < old->last)) old = c;
  if (old) conn_close(old, 0);
}

static void datagram_ready(struct mapping *m) {
  static char buf[BUFSZ];
  for (int k = 0; k < 64; k++) {
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    ssize_t n = recvfrom(m->lfd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
    if (n < 0) return;
    struct conn *c = find_session(m, &peer, plen);
    if (!c) {
      if (nsessions >= MAX_SESSIONS) evict_oldest_session();
      int up = open_connect_side(cfg, &m->connect);
      if (up < 0 || !(c = conn_new(m, m->lfd, 1, up))) {
        if (up >= 0) close(up);
        continue;
      }
      c->session = 1;
      nsessions++;
      memcpy(&c->peer, &peer, plen);
      c->peerlen = plen;
      if (cfg->proxy_protocol && m->connect.socktype == SOCK_STREAM) add_proxy_header(c, SOCK_DGRAM, &peer, plen, m->lfd);
    }
    struct dir *d = &c->d[0];
    if (d->len == 0) d->off = 0;
    /* A stream upstream takes datagrams back to back; a datagram upstream one at a time. */
    if ((c->s[1].dgram && d->len > 0) || d->off + d->len + (size_t)n > BUFCAP) continue;
    memcpy(d->buf + d->off + d->len, buf, (size_t)n);
    d->len += (size_t)n;
    c->last = now_s();
    pump(c);
  }
}

static void tick(void) {
  time_t t = now_s();
  for (struct conn *c = live, *next; c; c = next) {
    next = c->next;
    if (c->session && t - c->last > UDP_IDLE_S) conn_close(c, 0);
  }
  for (size_t i = 0; i < cfg->nmaps; i++) {
    struct mapping *m = &cfg->maps[i];
    if (!m->paused) continue;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lwatch[i]};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, m->lfd, &ev) == 0) m->paused = 0;
  }
}

static int watch_fd(int fd, struct watch *w) {
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int relay_run(struct relay_config *rc, int pidfd, int sigfd) {
  cfg = rc;
  static struct watch wsig = {W_SIGNAL, NULL, 0}, wpid = {W_PIDFD, NULL, 0}, whelper = {W_HELPER, NULL, 0};
  if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || !(lwatch = calloc(rc->nmaps, sizeof *lwatch))) {
    logmsg("epoll: %s", strerror(errno));
    return 1;
  }
  if (watch_fd(sigfd, &wsig) < 0 || watch_fd(pidfd, &wpid) < 0 || watch_fd(rc->helper, &whelper) < 0) {
    logmsg("epoll_ctl: %s", strerror(errno));
    return 1;
  }
  for (size_t i = 0; i < rc->nmaps; i++) {
    lwatch[i] = (struct watch){W_LISTENER, &rc->maps[i], 0};
    if (watch_fd(rc->maps[i].lfd, &lwatch[i]) < 0) {
      logmsg("epoll_ctl: %s", strerror(errno));
      return 1;
    }
  }
  time_t last_tick = now_s();
  for (;;) {
    struct epoll_event evs[64];
    int timeout = nsessions > 0 ? 1000 : -1;
    for (size_t i = 0; i < rc->nmaps; i++)
      if (rc->maps[i].paused) timeout = 1000;
    int n = epoll_wait(epfd, evs, 64, timeout);
    if (n < 0 && errno != EINTR) {
      logmsg("epoll_wait: %s", strerror(errno));
      return 1;
    }
    for (int k = 0; k < n; k++) {
      struct watch *w = evs[k].data.ptr;
      switch (w->kind) {
      case W_SIGNAL: {
        struct signalfd_siginfo si;
        if (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) logmsg("stopping on signal %u", si.ssi_signo);
        return 0;
      }
      case W_PIDFD:
        logmsg("the instance stopped");
        return 0;
      case W_HELPER:
        logmsg("the helper in the instance exited");
        return 1;
      case W_LISTENER: {
        struct mapping *m = w->ptr;
        if (m->listen.socktype == SOCK_STREAM) accept_ready(m);
        else datagram_ready(m);
        break;
      }
      case W_CONN:
        conn_event(w->ptr, w->idx, evs[k].events);
        break;
      }
    }
    while (graveyard) {
      struct conn *c = graveyard;
      graveyard = c->next;
      free(c->d[0].buf);
      free(c);
    }
    if (now_s() != last_tick) {
      last_tick = now_s();
      tick();
    }
  }
}
