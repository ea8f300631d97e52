import test from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  containerSysfs,
  formatIPv6,
  ipv4Addresses,
  linkAttrs,
  linkType,
  makedev,
  networkState,
  parseFibTrie,
  parseIfInet6,
  parseIPv4,
  parseMountinfo,
  parseNetDev,
  parseRoutes,
  readLinkAttrs,
} from "../../src/instances/drivers/lxc/netstate.js";
import { HostLinks } from "../../src/instances/drivers/lxc/hostlinks.js";

// Fixtures are text captured on the development host (kernel 6.x) from /proc/<pid>/net of a
// busybox container on a test bridge, and from the host itself.

/** A container with a veth NIC, a second address, a /32, an inner veth pair (d0) and a policy table (unmerged tries). */
const POLICY_TRIE = [
  "Id 100:",
  "  |-- 5.5.5.0",
  "     /24 link UNICAST",
  "Main:",
  "  +-- 0.0.0.0/0 3 0 5",
  "     +-- 0.0.0.0/4 2 0 2",
  "        |-- 0.0.0.0",
  "           /0 universe UNICAST",
  "        |-- 10.231.7.0",
  "           /24 link UNICAST",
  "     |-- 172.20.0.0",
  "        /16 link UNICAST",
  "     |-- 192.168.77.0",
  "        /28 link UNICAST",
  "Local:",
  "  +-- 0.0.0.0/0 3 0 4",
  "     +-- 10.231.0.0/20 2 0 2",
  "        +-- 10.231.7.0/24 2 0 2",
  "           |-- 10.231.7.2",
  "              /32 host LOCAL",
  "           |-- 10.231.7.255",
  "              /32 link BROADCAST",
  "        |-- 10.231.8.5",
  "           /32 host LOCAL",
  "     +-- 127.0.0.0/8 2 0 2",
  "        +-- 127.0.0.0/31 1 0 0",
  "           |-- 127.0.0.0",
  "              /8 host LOCAL",
  "           |-- 127.0.0.1",
  "              /32 host LOCAL",
  "        |-- 127.255.255.255",
  "           /32 link BROADCAST",
  "     +-- 172.20.0.0/16 2 0 2",
  "        |-- 172.20.0.1",
  "           /32 host LOCAL",
  "        |-- 172.20.255.255",
  "           /32 link BROADCAST",
  "     +-- 192.168.77.8/29 2 0 2",
  "        |-- 192.168.77.9",
  "           /32 host LOCAL",
  "        |-- 192.168.77.15",
  "           /32 link BROADCAST",
  "",
].join("\n");

const POLICY_ROUTE = [
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       ",
  "eth0\t00000000\t0107E70A\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               ",
  "eth0\t0007E70A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0                                                                               ",
  "d0\t000014AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0                                                                                 ",
  "eth0\t004DA8C0\t00000000\t0001\t0\t0\t0\tF0FFFFFF\t0\t0\t0                                                                               ",
  "",
].join("\n");

const POLICY_INET6 = [
  "fd420000000000070000000000000005 02 40 00 80     eth0",
  "00000000000000000000000000000001 01 80 10 80       lo",
  "fe8000000000000002163efffeaabbcc 02 40 20 80     eth0",
  "",
].join("\n");

/** The host: one address, tables merged (Main and Local print the same trie). */
const HOST_ROUTE = [
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       ",
  "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               ",
  "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0                                                                               ",
  "",
].join("\n");

/** The host's fib_trie: tables merged, so Main and Local print the same trie. */
const HOST_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
`;

/** A container's mountinfo (liblxc's layout, rootfs idmapped); one path escaped by hand. */
const MOUNTINFO = `83 44 254:0 /tmp/lodge-test-N89LET/storage-pools/default/containers/x1/rootfs / rw,relatime,idmapped shared:17 - ext4 /dev/vda rw,discard
84 83 0:46 / /dev rw,relatime shared:18 - tmpfs none rw,size=492k,mode=755,uid=100000,gid=100000
85 83 0:47 / /proc rw,nosuid,nodev,noexec,relatime shared:30 - proc proc rw
86 83 0:48 / /sys rw,relatime shared:31 - sysfs sysfs rw
87 84 0:6 /fuse /dev/fuse rw,relatime shared:19 - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755
95 84 0:49 / /dev/pts rw,nosuid,noexec,relatime shared:27 - devpts devpts rw,gid=100005,mode=620,ptmxmode=666,max=1024
98 85 0:46 /.lxc-boot-id /proc/sys/kernel/random/boot_id ro,nosuid,nodev,noexec,relatime shared:18 - tmpfs none rw,size=492k
45 83 0:50 / /run rw,nosuid,nodev,relatime shared:32 - tmpfs tmpfs rw,mode=755,uid=100000,gid=100000
120 83 0:51 / /mnt/my\\040sys rw,relatime - sysfs sysfs rw
`;


test("net/dev: interfaces in the kernel's order with their counters", () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:    1086      13    0    0    0     0          0         0     3084      18    0    0    0     0       0          0
 veth0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
`;
  const n = parseNetDev(text);
  assert.deepEqual(Object.keys(n), ["lo", "eth0", "veth0"]);
  assert.equal(n.eth0!.counters.bytes_received, 1086);
  assert.equal(n.eth0!.counters.packets_sent, 18);
});

test("fib_trie: every alias with its leaf, table by table; internal nodes are not leaves", () => {
  const merged = parseFibTrie(HOST_TRIE);
  assert.equal(merged.length, 14, "seven aliases in each of Main and Local");
  const main = merged.filter((e) => e.table === "Main");
  assert.deepEqual(
    main.map((e) => `${e.network >>> 24}.${(e.network >>> 16) & 255}.${(e.network >>> 8) & 255}.${e.network & 255}/${e.prefix} ${e.scope} ${e.type}`),
    [
      "0.0.0.0/0 universe UNICAST",
      "127.0.0.0/8 host LOCAL",
      "127.0.0.1/32 host LOCAL",
      "127.255.255.255/32 link BROADCAST",
      "192.0.2.0/24 link UNICAST",
      "192.0.2.2/32 host LOCAL",
      "192.0.2.255/32 link BROADCAST",
    ],
  );

  const policy = parseFibTrie(POLICY_TRIE);
  assert.deepEqual([...new Set(policy.map((e) => e.table))], ["Id 100", "Main", "Local"]);
  assert.deepEqual(policy[0], { table: "Id 100", network: parseIPv4("5.5.5.0"), prefix: 24, scope: "link", type: "UNICAST" });
  // "+-- 10.231.7.0/24 2 0 2" is a trie node, not a route: only the leaf's alias counts.
  assert.equal(policy.filter((e) => e.network === parseIPv4("10.231.7.0")).length, 1);
  assert.equal(policy.filter((e) => e.type === "LOCAL" && e.prefix === 32).length, 5);
  // An alias with a tos suffix, as older kernels print it.
  assert.equal(parseFibTrie("Main:\n  |-- 10.0.0.0\n     /8 link UNICAST tos=4\n")[0]!.prefix, 8);
  assert.deepEqual(parseFibTrie(""), []);
});

test("net/route: little- and big-endian words, gateways flagged", () => {
  const r = parseRoutes(POLICY_ROUTE, "LE");
  assert.deepEqual(
    r.map((x) => [x.iface, x.destination === parseIPv4("10.231.7.0") ? "10.231.7.0" : x.destination, x.mask >>> 0]),
    [
      ["eth0", 0, 0],
      ["eth0", "10.231.7.0", 0xffffff00],
      ["d0", parseIPv4("172.20.0.0"), 0xffff0000],
      ["eth0", parseIPv4("192.168.77.0"), 0xfffffff0],
    ],
  );
  assert.equal(r[0]!.gateway, parseIPv4("10.231.7.1"));
  assert.equal(r[0]!.flags & 2, 2, "RTF_GATEWAY");
  const be = parseRoutes("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t0A000000\t00000000\t0001\t0\t0\t0\tFF000000\t0\t0\t0\n", "BE");
  assert.deepEqual(be, [{ iface: "eth0", destination: parseIPv4("10.0.0.0"), gateway: 0, flags: 1, mask: 0xff000000 }]);
});

test("IPv4 addresses: the connected route's prefix and interface; loopback range to lo", () => {
  const host = ipv4Addresses(parseFibTrie(HOST_TRIE), parseRoutes(HOST_ROUTE, "LE"), [
    { name: "lo", loopback: true },
    { name: "ifb0", loopback: false },
    { name: "eth0", loopback: false },
  ]);
  assert.deepEqual(host, [
    { iface: "lo", address: "127.0.0.1", prefix: 8, scope: "local" },
    { iface: "eth0", address: "192.0.2.2", prefix: 24, scope: "global" },
  ]);

  const ifaces = ["lo", "eth0", "veth0", "d0"].map((name) => ({ name, loopback: name === "lo" }));
  const got = ipv4Addresses(parseFibTrie(POLICY_TRIE), parseRoutes(POLICY_ROUTE, "LE"), ifaces);
  assert.deepEqual(got, [
    { iface: "eth0", address: "10.231.7.2", prefix: 24, scope: "global" },
    // 10.231.8.5/32 lies in no connected route and there are several interfaces: left out.
    { iface: "lo", address: "127.0.0.1", prefix: 8, scope: "local" },
    { iface: "d0", address: "172.20.0.1", prefix: 16, scope: "global" },
    { iface: "eth0", address: "192.168.77.9", prefix: 28, scope: "global" },
  ]);
  // With one interface besides lo, the /32 can only be on it.
  const single = ipv4Addresses(parseFibTrie(POLICY_TRIE), parseRoutes(POLICY_ROUTE, "LE").filter((r) => r.iface === "eth0"), [
    { name: "lo", loopback: true },
    { name: "eth0", loopback: false },
  ]);
  assert.deepEqual(single.find((a) => a.address === "10.231.8.5"), { iface: "eth0", address: "10.231.8.5", prefix: 32, scope: "global" });
  // A link-local address is scope link.
  const ll = ipv4Addresses(parseFibTrie("Main:\n  +-- 169.254.0.0/16 2 0 2\n     |-- 169.254.0.0\n        /16 link UNICAST\n     |-- 169.254.3.4\n        /32 host LOCAL\n"), [], [{ name: "eth0", loopback: false }]);
  assert.deepEqual(ll, [{ iface: "eth0", address: "169.254.3.4", prefix: 16, scope: "link" }]);
  assert.deepEqual(ipv4Addresses([], [], ifaces), []);
});

test("if_inet6: addresses in canonical form, prefix and scope from hex fields", () => {
  assert.deepEqual(parseIfInet6(POLICY_INET6), [
    { iface: "eth0", ifindex: 2, address: "fd42:0:0:7::5", prefix: 64, scope: "global" },
    { iface: "lo", ifindex: 1, address: "::1", prefix: 128, scope: "local" },
    { iface: "eth0", ifindex: 2, address: "fe80::216:3eff:feaa:bbcc", prefix: 64, scope: "link" },
  ]);
  assert.deepEqual(parseIfInet6("garbage\n\n"), []);
});

test("IPv6 text form (RFC 5952)", () => {
  const f = (s: string) => formatIPv6(s.replace(/:/g, ""));
  assert.equal(f("0000:0000:0000:0000:0000:0000:0000:0000"), "::");
  assert.equal(f("0000:0000:0000:0000:0000:0000:0000:0001"), "::1");
  assert.equal(f("0001:0000:0000:0000:0000:0000:0000:0000"), "1::");
  assert.equal(f("2001:0db8:0000:0000:0001:0000:0000:0001"), "2001:db8::1:0:0:1", "the first of equal runs");
  assert.equal(f("2001:0db8:0000:0001:0000:0000:0000:0001"), "2001:db8:0:1::1", "the longest run");
  assert.equal(f("2001:0db8:0000:0001:0001:0001:0001:0001"), "2001:db8:0:1:1:1:1:1", "a single zero group stays");
  assert.equal(f("FE80:0000:0000:0000:0216:3EFF:FEAA:BBCC"), "fe80::216:3eff:feaa:bbcc");
});

test("mountinfo: the container's sysfs mounts and their device numbers", () => {
  const m = parseMountinfo(MOUNTINFO);
  assert.equal(m.length, 9);
  assert.deepEqual(m[3], { major: 0, minor: 48, mountPoint: "/sys", fstype: "sysfs" });
  assert.equal(m[8]!.mountPoint, "/mnt/my sys", "octal escapes undone");
  const sys = containerSysfs(m)!;
  assert.equal(sys.mountPoint, "/sys");
  assert.deepEqual([...sys.devs].sort((a, b) => a - b), [48, 51]);
  assert.equal(containerSysfs(m.filter((e) => e.mountPoint !== "/sys"))!.mountPoint, "/mnt/my sys");
  assert.equal(containerSysfs(m.filter((e) => e.fstype !== "sysfs")), undefined);
  assert.equal(makedev(0, 48), 48);
  assert.equal(makedev(254, 0), 65024);
  assert.equal(makedev(259, 300), (300 & 0xff) | (259 << 8) | ((300 & ~0xff) << 12));
});

test("sysfs attributes: MAC, MTU, flags; type and state as LXD names them", () => {
  assert.deepEqual(linkAttrs({ address: "00:16:3E:AA:BB:CC", mtu: "1400", flags: "0x1003", ifindex: "2", iflink: "6" }), {
    hwaddr: "00:16:3e:aa:bb:cc",
    mtu: 1400,
    flags: 0x1003,
    ifindex: 2,
    iflink: 6,
  });
  assert.equal(linkAttrs({ address: "00:00:00:00:00:00" }).hwaddr, "", "loopback: no MAC");
  assert.equal(linkAttrs({ address: "" }).hwaddr, undefined);
  assert.equal(linkAttrs({ address: "root:x:0:0" }).hwaddr, undefined, "not a MAC");
  assert.equal(linkAttrs({ mtu: "lots" }).mtu, undefined);
  assert.equal(linkType(0x9, "lo"), "loopback");
  assert.equal(linkType(0x1003, "eth0"), "broadcast");
  assert.equal(linkType(0x91, "tun0"), "point-to-point");
  assert.equal(linkType(0x1, "x"), "unknown");
  assert.equal(linkType(undefined, "lo"), "loopback");
});

test("container sysfs files are read only from the accepted devices, never through a final symlink", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-netstate-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const eth0 = join(dir, "eth0");
  await mkdir(eth0);
  await writeFile(join(eth0, "address"), "00:16:3e:01:02:03\n");
  await writeFile(join(eth0, "flags"), "0x1003\n");
  await writeFile(join(dir, "secret"), "1400\n");
  await symlink(join(dir, "secret"), join(eth0, "mtu"));
  const dev = (await stat(dir)).dev;
  const got = await readLinkAttrs(eth0, "eth0", new Set([dev]));
  assert.equal(got.hwaddr, "00:16:3e:01:02:03");
  assert.equal(got.flags, 0x1003);
  assert.equal(got.mtu, undefined, "a symlinked attribute is not followed");
  assert.deepEqual(await readLinkAttrs(eth0, "eth0", new Set([dev + 1])), {
    hwaddr: undefined, mtu: undefined, flags: undefined, ifindex: undefined, iflink: undefined,
  }, "files on another device are not read");
  // A directory symlink out of the tree lands on another device (the host's sysfs): refused.
  await symlink("/sys/class/net/lo", join(dir, "lo"));
  assert.equal((await readLinkAttrs(join(dir, "lo"), "lo", new Set([dev]))).mtu, undefined);
});

test("host links: the peer is found by index both ways, rescanned when it is new, gone when renamed", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-hostlinks-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const link = async (name: string, ifindex: number, iflink: number) => {
    await mkdir(join(dir, name), { recursive: true });
    await writeFile(join(dir, name, "ifindex"), `${ifindex}\n`);
    await writeFile(join(dir, name, "iflink"), `${iflink}\n`);
  };
  await link("lo", 1, 1);
  await link("br0", 3, 3);
  await link("vethA", 7, 2);
  const h = new HostLinks(dir, 0);
  assert.equal(await h.hostName(7, 2), "vethA");
  assert.equal(await h.hostName(7, 5), "", "iflink must point back");
  assert.equal(await h.hostName(3, 3), "", "not a linked interface");
  await link("vethB", 9, 2);
  assert.equal(await h.hostName(9, 2), "vethB", "a veth made after the first scan");
  await rm(join(dir, "vethA"), { recursive: true });
  await link("vethC", 7, 2);
  assert.equal(await h.hostName(7, 2), "vethC", "a renamed interface is found under its new name");
  // A fresh table is not rescanned on a miss.
  const slow = new HostLinks(dir, 60_000);
  assert.equal(await slow.hostName(9, 2), "vethB");
  await link("vethD", 11, 2);
  assert.equal(await slow.hostName(11, 2), "");
});

test("this process's own namespace, read the way a container's is", async () => {
  const s = await networkState(process.pid);
  const lo = s.lo!;
  assert.ok(lo, "lo is listed");
  assert.equal(lo.type, "loopback");
  assert.equal(lo.state, "up");
  assert.equal(lo.hwaddr, "");
  assert.equal(lo.host_name, "");
  assert.ok(lo.mtu > 0);
  assert.deepEqual(lo.addresses.find((a) => a.family === "inet"), { family: "inet", address: "127.0.0.1", netmask: "8", scope: "local" });
  assert.deepEqual(await networkState(2 ** 22 + 1), {}, "no such process: no interfaces");
});
