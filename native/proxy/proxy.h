/*
 * lodge-proxy: the forwarder behind a proxy device. Shared declarations.
 *
 * One process per device: it listens on one side (the host, or the instance's network and
 * mount namespaces) and, for each connection or UDP client, opens a socket on the other side
 * and relays both ways. Sockets of the instance side are made by a helper child that lives in
 * the instance's namespaces (inside.c) and hands them over by SCM_RIGHTS: a socket keeps the
 * namespace it was made in, so the relay itself runs in the host's namespaces.
 */
#pragma once
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

enum side { SIDE_HOST = 0, SIDE_INSIDE = 1 };
enum { OP_LISTEN = 1, OP_CONNECT = 2, OP_DROP = 3 };

/* One concrete address: a single port, or a unix socket (abstract when sun_path[0] is 0). */
struct endpoint {
  int family;   /* AF_INET, AF_INET6, AF_UNIX */
  int socktype; /* SOCK_STREAM or SOCK_DGRAM */
  struct sockaddr_storage sa;
  socklen_t salen;
};

/* Owner and mode given to a listening unix socket file; -1 leaves a field alone. */
struct sockmode {
  long uid, gid, mode;
};

/* addr.c */
/* Parses tcp:ADDR:PORTS, udp:ADDR:PORTS or unix:PATH into one endpoint per port. */
int parse_endpoints(const char *spec, struct endpoint **out, size_t *n, char *err, size_t errlen);
/* The file path of a unix endpoint, or NULL (abstract or not unix). */
const char *endpoint_path(const struct endpoint *ep);
/* A printable form for the log. */
const char *endpoint_str(const struct endpoint *ep, char *buf, size_t len);

/* sock.c: sockets on the side we are in. Returns the fd, or -1 with errno and *what set. */
int open_endpoint(int op, const struct endpoint *ep, const struct sockmode *sm, const char **what);
/* After bind: the identity of a socket file we made, to remove it later only if still ours. */
struct madefile {
  char path[108];
  dev_t dev;
  ino_t ino;
};
void remember_file(struct madefile *f, const struct endpoint *ep);
void remove_file(const struct madefile *f);

/* inside.c: the helper in the instance's namespaces. */
/* Forks the helper for init PID; returns our end of its socket, or -1 with a message in err. */
int inside_start(pid_t pid, char *err, size_t errlen);
/* Asks the helper for a socket (OP_LISTEN/OP_CONNECT) or to drop to uid/gid (OP_DROP). */
int inside_request(int sock, int op, const struct endpoint *ep, const struct sockmode *sm, long uid, long gid,
                   const char **what, int *err);

/* relay.c */
struct mapping {
  struct endpoint listen, connect;
  int lfd;
  int paused; /* accept hit the fd limit; retried at the next tick */
  struct madefile made;
};
struct relay_config {
  struct mapping *maps;
  size_t nmaps;
  enum side listen_side;
  int helper;         /* socket to the helper */
  int proxy_protocol; /* send a PROXY v2 header to stream upstreams */
};
/* Runs until a signal or the instance's init exits; returns the exit status. */
int relay_run(struct relay_config *cfg, int pidfd, int sigfd);
/* A socket of the connect side, made where that side is. */
int open_connect_side(struct relay_config *cfg, const struct endpoint *ep);

/* proxyproto.c: a PROXY protocol v2 header for a connection from src to dst. */
size_t proxy_v2_header(char *buf, size_t cap, int socktype, const struct sockaddr_storage *src, socklen_t srclen,
                       const struct sockaddr_storage *dst, socklen_t dstlen);

/* main.c */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
