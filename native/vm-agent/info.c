/*
 * What the agent tells about the guest: hello (agent version, os-release, kernel, hostname)
 * and state (interfaces as LXD's state.network, memory from /proc/meminfo, process count).
 * Everything comes from /proc, /sys and getifaddrs (netlink): no NSS, so a static binary
 * works in any guest.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "agent.h"

/* A value of os-release (KEY=value or KEY="value"), or "" when absent. */
static void os_release(const char *key, char *out, size_t outlen) {
  out[0] = 0;
  FILE *f = fopen("/etc/os-release", "re");
  if (!f) f = fopen("/usr/lib/os-release", "re");
  if (!f) return;
  char line[512];
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, klen) || line[klen] != '=') continue;
    char *v = line + klen + 1;
    v[strcspn(v, "\n")] = 0;
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) v[n - 1] = 0, v++;
    snprintf(out, outlen, "%s", v);
    break;
  }
  fclose(f);
}

void info_hello(struct sb *j) {
  char name[128], ver[128], host[256] = "";
  struct utsname u;
  os_release("NAME", name, sizeof name);
  os_release("VERSION_ID", ver, sizeof ver);
  uname(&u);
  gethostname(host, sizeof host - 1);
  sb_printf(j, "{\"version\":");
  sb_json_string(j, AGENT_VERSION);
  sb_printf(j, ",\"os\":");
  sb_json_string(j, name);
  sb_printf(j, ",\"osVersion\":");
  sb_json_string(j, ver);
  sb_printf(j, ",\"kernelVersion\":");
  sb_json_string(j, u.release);
  sb_printf(j, ",\"hostname\":");
  sb_json_string(j, host);
  sb_add(j, "}", 1);
}

static long long read_num(const char *ifname, const char *file, int base) {
  char p[320], buf[64];
  snprintf(p, sizeof p, "/sys/class/net/%s/%s", ifname, file);
  FILE *f = fopen(p, "re");
  if (!f) return 0;
  long long v = 0;
  if (fgets(buf, sizeof buf, f)) v = strtoll(buf, NULL, base);
  fclose(f);
  return v;
}

static void read_str(const char *ifname, const char *file, char *out, size_t n) {
  char p[320];
  out[0] = 0;
  snprintf(p, sizeof p, "/sys/class/net/%s/%s", ifname, file);
  FILE *f = fopen(p, "re");
  if (!f) return;
  if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = 0;
  fclose(f);
}

static int prefix_len(const unsigned char *m, size_t n) {
  int bits = 0;
  for (size_t i = 0; i < n; i++)
    for (int b = 7; b >= 0; b--) bits += (m[i] >> b) & 1;
  return bits;
}

static void addresses(struct ifaddrs *all, const char *ifname, struct sb *j) {
  int first = 1;
  sb_printf(j, "\"addresses\":[");
  for (struct ifaddrs *a = all; a; a = a->ifa_next) {
    if (!a->ifa_addr || strcmp(a->ifa_name, ifname)) continue;
    int fam = a->ifa_addr->sa_family;
    if (fam != AF_INET && fam != AF_INET6) continue;
    char addr[INET6_ADDRSTRLEN] = "";
    int plen = 0;
    const char *scope = "global";
    if (fam == AF_INET) {
      struct in_addr *in = &((struct sockaddr_in *)a->ifa_addr)->sin_addr;
      inet_ntop(AF_INET, in, addr, sizeof addr);
      if (a->ifa_netmask) plen = prefix_len((unsigned char *)&((struct sockaddr_in *)a->ifa_netmask)->sin_addr, 4);
      uint32_t h = ntohl(in->s_addr);
      if ((h >> 24) == 127) scope = "local";
      else if ((h >> 16) == 0xa9fe) scope = "link";
    } else {
      struct in6_addr *in = &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;
      inet_ntop(AF_INET6, in, addr, sizeof addr);
      if (a->ifa_netmask) plen = prefix_len(((struct sockaddr_in6 *)a->ifa_netmask)->sin6_addr.s6_addr, 16);
      if (IN6_IS_ADDR_LOOPBACK(in)) scope = "local";
      else if (IN6_IS_ADDR_LINKLOCAL(in)) scope = "link";
    }
    sb_printf(j, "%s{\"family\":\"%s\",\"address\":\"%s\",\"netmask\":\"%d\",\"scope\":\"%s\"}", first ? "" : ",",
              fam == AF_INET ? "inet" : "inet6", addr, plen, scope);
    first = 0;
  }
  sb_add(j, "]", 1);
}

static void network(struct sb *j) {
  struct ifaddrs *all = NULL;
  if (getifaddrs(&all) < 0) all = NULL;
  DIR *d = opendir("/sys/class/net");
  int first = 1;
  sb_add(j, "{", 1);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    const char *n = e->d_name;
    if (n[0] == '.') continue;
    long long flags = read_num(n, "flags", 16), type = read_num(n, "type", 10);
    char hw[64];
    read_str(n, "address", hw, sizeof hw);
    const char *kind = (flags & IFF_LOOPBACK) || type == 772 ? "loopback"
                       : (flags & IFF_POINTOPOINT)           ? "point-to-point"
                       : (flags & IFF_BROADCAST)             ? "broadcast"
                                                             : "unknown";
    if (!strcmp(kind, "loopback") || !strcmp(hw, "00:00:00:00:00:00")) hw[0] = 0;
    sb_printf(j, "%s", first ? "" : ",");
    first = 0;
    sb_json_string(j, n);
    sb_add(j, ":{", 2);
    addresses(all, n, j);
    sb_printf(j,
              ",\"counters\":{\"bytes_received\":%lld,\"bytes_sent\":%lld,\"packets_received\":%lld,\"packets_sent\":%lld,"
              "\"errors_received\":%lld,\"errors_sent\":%lld,\"packets_dropped_inbound\":%lld,\"packets_dropped_outbound\":%lld}",
              read_num(n, "statistics/rx_bytes", 10), read_num(n, "statistics/tx_bytes", 10),
              read_num(n, "statistics/rx_packets", 10), read_num(n, "statistics/tx_packets", 10),
              read_num(n, "statistics/rx_errors", 10), read_num(n, "statistics/tx_errors", 10),
              read_num(n, "statistics/rx_dropped", 10), read_num(n, "statistics/tx_dropped", 10));
    sb_printf(j, ",\"hwaddr\":\"%s\",\"host_name\":\"\",\"mtu\":%lld,\"state\":\"%s\",\"type\":\"%s\"}", hw,
              read_num(n, "mtu", 10), (flags & IFF_UP) ? "up" : "down", kind);
  }
  sb_add(j, "}", 1);
  if (d) closedir(d);
  if (all) freeifaddrs(all);
}

void info_state(struct sb *j) {
  long long total = 0, avail = -1, freemem = 0, buffers = 0, cached = 0;
  FILE *f = fopen("/proc/meminfo", "re");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    long long v;
    if (sscanf(line, "MemTotal: %lld", &v) == 1) total = v;
    else if (sscanf(line, "MemAvailable: %lld", &v) == 1) avail = v;
    else if (sscanf(line, "MemFree: %lld", &v) == 1) freemem = v;
    else if (sscanf(line, "Buffers: %lld", &v) == 1) buffers = v;
    else if (sscanf(line, "Cached: %lld", &v) == 1) cached = v;
  }
  if (f) fclose(f);
  if (avail < 0) avail = freemem + buffers + cached;
  int procs = 0;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) if (isdigit((unsigned char)e->d_name[0])) procs++;
  if (d) closedir(d);
  sb_printf(j, "{\"memory\":{\"usage\":%lld,\"total\":%lld},\"processes\":%d,\"network\":", (total - avail) * 1024, total * 1024,
            procs);
  network(j);
  sb_add(j, "}", 1);
}
