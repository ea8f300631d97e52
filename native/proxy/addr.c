/*
 * Addresses as the proxy device writes them (lodged has validated them already; this parser
 * refuses anything else all the same):
 *   tcp:127.0.0.1:80   udp:[::1]:53   tcp:0.0.0.0:8000-8010,8443   unix:/run/x.sock   unix:@name
 * One endpoint comes out per port.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define MAX_PORTS 65535

static int fail(char *err, size_t errlen, const char *spec, const char *why) {
  snprintf(err, errlen, "%s: %s", spec, why);
  return -1;
}

static long port_num(const char *s, const char *end) {
  if (s == end || end - s > 5) return -1;
  long v = 0;
  for (const char *p = s; p < end; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

/* "80", "80-90", "80,443,8000-8010" into ports[] (n set); -1 when malformed. */
static int parse_ports(const char *s, uint16_t *ports, size_t *n) {
  *n = 0;
  for (;;) {
    const char *comma = strchr(s, ',');
    const char *end = comma ? comma : s + strlen(s);
    const char *dash = memchr(s, '-', (size_t)(end - s));
    long first = port_num(s, dash ? dash : end), last = dash ? port_num(dash + 1, end) : first;
    if (first < 0 || last < first) return -1;
    for (long p = first; p <= last; p++) {
      if (*n == MAX_PORTS) return -1;
      ports[(*n)++] = (uint16_t)p;
    }
    if (!comma) return 0;
    s = comma + 1;
  }
}

static int parse_unix(const char *spec, const char *path, struct endpoint **out, size_t *n, char *err, size_t errlen) {
  struct endpoint *ep = calloc(1, sizeof *ep);
  if (!ep) return fail(err, errlen, spec, "out of memory");
  struct sockaddr_un *un = (struct sockaddr_un *)&ep->sa;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof un->sun_path || (path[0] != '/' && path[0] != '@') || (path[0] == '@' && len == 1)) {
    free(ep);
    return fail(err, errlen, spec, "a unix socket path is absolute (or @name) and under 108 bytes");
  }
  un->sun_family = AF_UNIX;
  ep->family = AF_UNIX;
  ep->socktype = SOCK_STREAM;
  if (path[0] == '@') {
    /* Abstract: a leading NUL, then the name, and the length says where it ends. */
    memcpy(un->sun_path + 1, path + 1, len - 1);
    ep->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  } else {
    memcpy(un->sun_path, path, len + 1);
    ep->salen = (socklen_t)sizeof *un;
  }
  *out = ep;
  *n = 1;
  return 0;
}

int parse_endpoints(const char *spec, struct endpoint **out, size_t *n, char *err, size_t errlen) {
  int socktype;
  const char *rest;
  if (!strncmp(spec, "unix:", 5)) return parse_unix(spec, spec + 5, out, n, err, errlen);
  if (!strncmp(spec, "tcp:", 4)) socktype = SOCK_STREAM, rest = spec + 4;
  else if (!strncmp(spec, "udp:", 4)) socktype = SOCK_DGRAM, rest = spec + 4;
  else return fail(err, errlen, spec, "the address starts with tcp:, udp: or unix:");

  char host[INET6_ADDRSTRLEN + 2];
  const char *ports;
  if (rest[0] == '[') {
    const char *close = strchr(rest, ']');
    if (!close || close[1] != ':' || (size_t)(close - rest - 1) >= sizeof host) return fail(err, errlen, spec, "bad [IPv6]:port");
    memcpy(host, rest + 1, (size_t)(close - rest - 1));
    host[close - rest - 1] = 0;
    ports = close + 2;
  } else {
    const char *colon = strrchr(rest, ':');
    if (!colon || (size_t)(colon - rest) >= sizeof host) return fail(err, errlen, spec, "needs ADDRESS:PORT");
    memcpy(host, rest, (size_t)(colon - rest));
    host[colon - rest] = 0;
    ports = colon + 1;
  }

  struct in_addr a4;
  struct in6_addr a6;
  int family;
  if (inet_pton(AF_INET, host, &a4) == 1) family = AF_INET;
  else if (inet_pton(AF_INET6, host, &a6) == 1) family = AF_INET6;
  else return fail(err, errlen, spec, "the address is not an IPv4 or IPv6 address");

  static uint16_t list[MAX_PORTS];
  size_t count;
  if (parse_ports(ports, list, &count) < 0) return fail(err, errlen, spec, "bad port or port range (1-65535)");
  struct endpoint *eps = calloc(count, sizeof *eps);
  if (!eps) return fail(err, errlen, spec, "out of memory");
  for (size_t i = 0; i < count; i++) {
    eps[i].family = family;
    eps[i].socktype = socktype;
    if (family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&eps[i].sa;
      in->sin_family = AF_INET;
      in->sin_addr = a4;
      in->sin_port = htons(list[i]);
      eps[i].salen = sizeof *in;
    } else {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&eps[i].sa;
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = a6;
      in6->sin6_port = htons(list[i]);
      eps[i].salen = sizeof *in6;
    }
  }
  *out = eps;
  *n = count;
  return 0;
}

const char *endpoint_path(const struct endpoint *ep) {
  const struct sockaddr_un *un = (const struct sockaddr_un *)&ep->sa;
  return ep->family == AF_UNIX && un->sun_path[0] ? un->sun_path : NULL;
}

const char *endpoint_str(const struct endpoint *ep, char *buf, size_t len) {
  const char *proto = ep->socktype == SOCK_DGRAM ? "udp" : "tcp";
  char host[INET6_ADDRSTRLEN];
  if (ep->family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ep->sa;
    if (un->sun_path[0]) snprintf(buf, len, "unix:%s", un->sun_path);
    else snprintf(buf, len, "unix:@%.*s", (int)(ep->salen - offsetof(struct sockaddr_un, sun_path) - 1), un->sun_path + 1);
  } else if (ep->family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ep->sa;
    snprintf(buf, len, "%s:%s:%u", proto, inet_ntop(AF_INET, &in->sin_addr, host, sizeof host), ntohs(in->sin_port));
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ep->sa;
    snprintf(buf, len, "%s:[%s]:%u", proto, inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host), ntohs(in6->sin6_port));
  }
  return buf;
}
