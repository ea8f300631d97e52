/*
 * The PROXY protocol, version 2 (HAProxy's binary form): a header sent to the upstream before
 * the client's bytes, naming the client's address and the address it reached.
 */
#include "proxy.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static const char SIGNATURE[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

size_t proxy_v2_header(char *buf, size_t cap, int socktype, const struct sockaddr_storage *src, socklen_t srclen,
                       const struct sockaddr_storage *dst, socklen_t dstlen) {
  unsigned char *p = (unsigned char *)buf;
  size_t addrlen = 0;
  int family = src->ss_family == dst->ss_family ? src->ss_family : AF_UNSPEC;
  if (srclen == 0 || dstlen == 0) family = AF_UNSPEC;
  unsigned char fam = 0;
  unsigned char transport = socktype == SOCK_DGRAM ? 0x2 : 0x1;
  if (family == AF_INET) fam = 0x10 | transport, addrlen = 12;
  else if (family == AF_INET6) fam = 0x20 | transport, addrlen = 36;
  else if (family == AF_UNIX) fam = 0x30 | transport, addrlen = 216;
  if (cap < 16 + addrlen) return 0;
  memcpy(p, SIGNATURE, sizeof SIGNATURE);
  p[12] = fam ? 0x21 : 0x20; /* version 2; PROXY, or LOCAL when the addresses cannot be told */
  p[13] = fam;
  p[14] = (unsigned char)(addrlen >> 8);
  p[15] = (unsigned char)addrlen;
  unsigned char *a = p + 16;
  if (family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;
    memcpy(a, &s->sin_addr, 4);
    memcpy(a + 4, &d->sin_addr, 4);
    memcpy(a + 8, &s->sin_port, 2);
    memcpy(a + 10, &d->sin_port, 2);
  } else if (family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src, *d = (const struct sockaddr_in6 *)dst;
    memcpy(a, &s->sin6_addr, 16);
    memcpy(a + 16, &d->sin6_addr, 16);
    memcpy(a + 32, &s->sin6_port, 2);
    memcpy(a + 34, &d->sin6_port, 2);
  } else if (family == AF_UNIX) {
    const struct sockaddr_un *s = (const struct sockaddr_un *)src, *d = (const struct sockaddr_un *)dst;
    memset(a, 0, 216);
    size_t sl = srclen > offsetof(struct sockaddr_un, sun_path) ? srclen - offsetof(struct sockaddr_un, sun_path) : 0;
    size_t dl = dstlen > offsetof(struct sockaddr_un, sun_path) ? dstlen - offsetof(struct sockaddr_un, sun_path) : 0;
    memcpy(a, s->sun_path, sl > 108 ? 108 : sl);
    memcpy(a + 108, d->sun_path, dl > 108 ? 108 : dl);
  }
  return 16 + addrlen;
}
