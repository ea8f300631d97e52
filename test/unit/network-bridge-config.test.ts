/**
 * The bridge driver's pure parts: dnsmasq's configuration and hosts file, the nftables script,
 * dnsmasq's lease file, and the address arithmetic under them. (That nft and dnsmasq accept
 * what is generated is proven by test/integration/network-bridge-driver.test.ts.)
 */
import test from "node:test";
import assert from "node:assert/strict";
import type { ResolvedNetwork } from "../../src/networks/driver.js";
import { canonicalAddress, defaultRanges, parseCidr } from "../../src/networks/drivers/bridge/cidr.js";
import { dnsmasqConfig, dnsmasqHosts, needsDnsmasq } from "../../src/networks/drivers/bridge/dnsmasq-config.js";
import { macFromDuid, mergeLeases, parseLeaseFile } from "../../src/networks/drivers/bridge/leases.js";
import { stableHwaddr } from "../../src/networks/drivers/bridge/link.js";
import { assertNetworkName, networkFiles } from "../../src/networks/drivers/bridge/names.js";
import { forwardLines, nftDeleteScript, nftRuleset, parsePorts } from "../../src/networks/drivers/bridge/nft-ruleset.js";

const files = networkFiles("/var/lib/lodge/networks", "lodgebr0");
const id = { user: "nobody", group: "nogroup" };

function net(change: (n: ResolvedNetwork) => void = () => {}): ResolvedNetwork {
  const n: ResolvedNetwork = {
    name: "lodgebr0",
    ipv4: { cidr: "10.83.4.1/24", nat: true, dhcp: true, dhcpRanges: [] },
    ipv6: { cidr: "fd42:1:2:3::1/64", nat: true, dhcp: false, dhcpRanges: [] },
    dnsDomain: "lodge",
    dnsMode: "managed",
    hosts: [],
    forwards: [],
  };
  change(n);
  return n;
}

const lines = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#"));

test("cidr: canonical addresses, subnets and the default DHCP ranges, as LXD's", () => {
  assert.deepEqual(parseCidr("10.83.4.1/24"), { family: 4, address: "10.83.4.1", prefix: 24, subnet: "10.83.4.0/24" });
  assert.deepEqual(parseCidr("fd42:0001:0:0:0::1/64"), { family: 6, address: "fd42:1::1", prefix: 64, subnet: "fd42:1::/64" });
  assert.equal(canonicalAddress("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1", "the first of two equal zero runs");
  assert.equal(canonicalAddress("::ffff:10.0.0.1"), "::ffff:a00:1");
  assert.equal(canonicalAddress("fd00:0:0:1::"), "fd00:0:0:1::");
  for (const bad of ["10.0.0.1", "10.0.0.1/33", "10.0.0.256/24", "fd00::1/129", "x/24", "10.0.0.1/24\nport=0"]) {
    assert.throws(() => parseCidr(bad), /Invalid address/, bad);
  }
  assert.deepEqual(defaultRanges("10.83.4.1/24"), [["10.83.4.2", "10.83.4.254"]]);
  assert.deepEqual(defaultRanges("10.83.4.254/24"), [["10.83.4.1", "10.83.4.253"]]);
  assert.deepEqual(defaultRanges("10.83.4.100/24"), [["10.83.4.1", "10.83.4.99"], ["10.83.4.101", "10.83.4.254"]]);
  assert.deepEqual(defaultRanges("10.0.0.1/30"), [["10.0.0.2", "10.0.0.2"]]);
  assert.deepEqual(defaultRanges("10.0.0.1/31"), []);
  assert.deepEqual(defaultRanges("fd42:1:2:3::1/64"), [["fd42:1:2:3::2", "fd42:1:2:3:ffff:ffff:ffff:ffff"]]);
});

test("dnsmasq.conf: bound to the bridge, authoritative DHCP over the subnet but the gateway, SLAAC, the domain, as nobody", () => {
  const conf = dnsmasqConfig(net(), files, id);
  assert.deepEqual(lines(conf), [
    "strict-order",
    "bind-interfaces",
    "except-interface=lo",
    "interface=lodgebr0",
    "listen-address=10.83.4.1",
    "listen-address=fd42:1:2:3::1",
    "pid-file=/var/lib/lodge/networks/lodgebr0/dnsmasq.pid",
    "user=nobody",
    "group=nogroup",
    "no-ping",
    "no-negcache",
    "quiet-dhcp",
    "quiet-dhcp6",
    "quiet-ra",
    "no-hosts",
    "dhcp-no-override",
    "dhcp-authoritative",
    "dhcp-leasefile=/var/lib/lodge/networks/lodgebr0/dnsmasq.leases",
    "dhcp-hostsfile=/var/lib/lodge/networks/lodgebr0/dnsmasq.hosts",
    "dhcp-range=10.83.4.2,10.83.4.254,1h",
    "dhcp-range=::,constructor:lodgebr0,ra-stateless,ra-names",
    "domain=lodge",
    "local=/lodge/",
    "dhcp-ignore-names",
  ]);
  assert.doesNotMatch(conf, /no-resolv/, "instances need the host's upstream DNS");
});

test("dnsmasq.conf: stateful DHCPv6, given ranges, MTU, dns.mode, raw.dnsmasq", () => {
  const conf = lines(
    dnsmasqConfig(
      net((n) => {
        n.mtu = 1400;
        n.ipv4!.dhcpRanges = [["10.83.4.100", "10.83.4.150"]];
        n.ipv6 = { cidr: "fd42:1:2:3::1/64", nat: false, dhcp: true, dhcpRanges: [["fd42:1:2:3::100", "fd42:1:2:3::1ff"]] };
        n.dnsMode = "dynamic";
        n.rawDnsmasq = "dhcp-option=6,1.1.1.1\r\nlog-queries\n";
      }),
      files,
      id,
    ),
  );
  assert.ok(conf.includes("dhcp-range=10.83.4.100,10.83.4.150,1h"));
  assert.ok(!conf.includes("dhcp-range=10.83.4.2,10.83.4.254,1h"));
  assert.ok(conf.includes("dhcp-option-force=26,1400"));
  assert.ok(conf.includes("dhcp-range=fd42:1:2:3::100,fd42:1:2:3::1ff,64,1h"));
  assert.ok(conf.includes("enable-ra"));
  assert.ok(!conf.includes("dhcp-ignore-names"), "dynamic: clients name themselves");
  assert.deepEqual(conf.slice(-2), ["dhcp-option=6,1.1.1.1", "log-queries"], "raw.dnsmasq last, its lines as given");

  const noRa = lines(dnsmasqConfig(net((n) => (n.ipv6 = { cidr: "fd42::1/64", nat: false, dhcp: false, dhcpRanges: [], routerAdvertisements: false })), files, id));
  assert.ok(!noRa.some((l) => l.includes("ra-") || l === "enable-ra"));

  const noDns = lines(dnsmasqConfig(net((n) => (n.dnsMode = "none")), files, id));
  assert.ok(noDns.includes("port=0"));
  assert.ok(!noDns.some((l) => l.startsWith("domain=")));
});

test("dnsmasq: needed for DHCP, router advertisements or DNS, and only then", () => {
  assert.equal(needsDnsmasq(net()), true);
  const quiet = net((n) => {
    n.ipv4!.dhcp = false;
    n.ipv6!.routerAdvertisements = false;
    n.dnsMode = "none";
  });
  assert.equal(needsDnsmasq(quiet), false);
  assert.equal(needsDnsmasq({ ...quiet, dnsMode: "managed" }), true);
  assert.equal(needsDnsmasq(net((n) => ((n.ipv4 = undefined), (n.ipv6 = undefined)))), false, "no addresses, nothing to serve");
});

test("dnsmasq: a value that would add a line of its own is refused, in the conf and in the hosts file", () => {
  assert.throws(() => dnsmasqConfig(net((n) => (n.dnsDomain = "lodge\nport=0")), files, id), /Invalid DNS domain/);
  assert.throws(() => dnsmasqConfig(net((n) => (n.ipv4!.dhcpRanges = [["10.83.4.2\nport=0", "10.83.4.9"]])), files, id), /Invalid IPv4 DHCP range/);
  assert.throws(() => dnsmasqConfig(net((n) => (n.ipv4!.dhcpRanges = [["fd00::2", "fd00::9"]])), files, id), /Invalid IPv4 DHCP range/);
  assert.throws(() => dnsmasqConfig(net(), networkFiles("/tmp/x\ny", "lodgebr0"), id), /Invalid dnsmasq value/);
  assert.throws(() => dnsmasqHosts([{ hwaddr: "00:16:3e:00:00:01", name: "c1\ndhcp-range=1.2.3.4" }]), /Invalid host name/);
  assert.throws(() => dnsmasqHosts([{ hwaddr: "00:16:3e:00:00:01,ignore", name: "c1" }]), /Invalid MAC/);
  assert.throws(() => dnsmasqHosts([{ hwaddr: "00:16:3e:00:00:01", name: "c1", ipv4: "10.0.0.1,ignore" }]), /Invalid IPv4/);
  assert.throws(() => dnsmasqHosts([{ hwaddr: "00:16:3e:00:00:01", name: "c1", ipv6: "10.0.0.1" }]), /Invalid IPv6/);
});

test("dnsmasq.hosts: MAC, addresses and name per host", () => {
  assert.equal(
    dnsmasqHosts([
      { hwaddr: "00:16:3E:AA:BB:CC", name: "c1", ipv4: "10.83.4.50", ipv6: "fd42:1:2:3:0::50" },
      { hwaddr: "00:16:3e:00:00:02", name: "web-2" },
      { hwaddr: "00:16:3e:00:00:03", name: "v6only", ipv6: "fd42:1:2:3::3" },
    ]),
    "00:16:3e:aa:bb:cc,10.83.4.50,[fd42:1:2:3::50],c1\n00:16:3e:00:00:02,web-2\n00:16:3e:00:00:03,[fd42:1:2:3::3],v6only\n",
  );
  assert.equal(dnsmasqHosts([]), "");
});

test("nftables: one atomic script for the whole table; NAT, accepts and no forward chains when there are no forwards", () => {
  const script = nftRuleset(net());
  const head = script.split("\n").slice(0, 3);
  assert.deepEqual(head, ["table inet lodge-lodgebr0", "delete table inet lodge-lodgebr0", "table inet lodge-lodgebr0 {"]);
  const rules = script.split("\n").map((l) => l.trim());
  for (const r of [
    "type filter hook forward priority filter; policy accept;",
    'iifname "lodgebr0" accept',
    'oifname "lodgebr0" accept',
    'iifname "lodgebr0" udp dport 67 accept',
    'iifname "lodgebr0" udp dport 547 accept',
    'iifname "lodgebr0" meta l4proto { tcp, udp } th dport 53 accept',
    "type nat hook postrouting priority srcnat; policy accept;",
    'ip saddr 10.83.4.0/24 oifname != "lodgebr0" masquerade',
    'ip6 saddr fd42:1:2:3::/64 oifname != "lodgebr0" masquerade',
  ]) {
    assert.ok(rules.includes(r), `missing: ${r}\n${script}`);
  }
  assert.doesNotMatch(script, /prerouting|dnat/);
  assert.equal(nftDeleteScript("lodgebr0"), "table inet lodge-lodgebr0\ndelete table inet lodge-lodgebr0\n");

  const quiet = nftRuleset(net((n) => ((n.ipv4!.nat = false), (n.ipv6 = undefined), (n.dnsMode = "none"), (n.ipv4!.dhcp = false))));
  assert.doesNotMatch(quiet, /masquerade|dport 67|dport 53|ip6|icmpv6/);
});

test("nftables: forwards DNAT in prerouting and output, ports mapped one to one, a default target last, hairpin masquerade", () => {
  const n = net((x) => {
    x.forwards = [
      {
        listenAddress: "10.83.4.1",
        defaultTarget: "10.83.4.9",
        ports: [
          { protocol: "tcp", listenPorts: "80", targetAddress: "10.83.4.5" },
          { protocol: "tcp", listenPorts: "8000-8002,9000", targetAddress: "10.83.4.5", targetPorts: "18000-18002,19000" },
          { protocol: "udp", listenPorts: "5000-5010", targetAddress: "10.83.4.6", targetPorts: "53" },
        ],
      },
      { listenAddress: "fd42:1:2:3:0::1", ports: [{ protocol: "tcp", listenPorts: "443", targetAddress: "fd42:1:2:3::5", targetPorts: "8443" }] },
    ];
  });
  assert.deepEqual(forwardLines(n.forwards[0]!), [
    "ip daddr 10.83.4.1 tcp dport 80 dnat ip to 10.83.4.5",
    "ip daddr 10.83.4.1 dnat ip to tcp dport map { 8000 : 10.83.4.5 . 18000, 8001 : 10.83.4.5 . 18001, 8002 : 10.83.4.5 . 18002, 9000 : 10.83.4.5 . 19000 }",
    "ip daddr 10.83.4.1 udp dport { 5000-5010 } dnat ip to 10.83.4.6:53",
    "ip daddr 10.83.4.1 dnat ip to 10.83.4.9",
  ]);
  assert.deepEqual(forwardLines(n.forwards[1]!), ["ip6 daddr fd42:1:2:3::1 tcp dport 443 dnat ip6 to [fd42:1:2:3::5]:8443"]);
  const rules = nftRuleset(n).split("\n").map((l) => l.trim());
  assert.ok(rules.includes("type nat hook prerouting priority dstnat; policy accept;"));
  assert.ok(rules.includes("type nat hook output priority -100; policy accept;"));
  assert.equal(rules.filter((r) => r === "jump forwards").length, 2);
  assert.ok(rules.includes('oifname "lodgebr0" ip saddr 10.83.4.0/24 ct status dnat masquerade'));
  assert.ok(rules.includes('oifname "lodgebr0" ip6 saddr fd42:1:2:3::/64 ct status dnat masquerade'));

  const bad = (ports: string, targetPorts?: string, targetAddress = "10.83.4.5") =>
    forwardLines({ listenAddress: "10.83.4.1", ports: [{ protocol: "tcp", listenPorts: ports, targetAddress, targetPorts }] });
  assert.throws(() => bad("80,81", "90,91,92"), /differ in count/);
  assert.throws(() => bad("80", undefined, "fd42::5"), /not an IPv4 address/);
  assert.throws(() => bad("80; drop"), /Invalid port/);
  assert.throws(() => bad("0"), /Invalid port/);
  assert.throws(() => bad("70000"), /Invalid port/);
  assert.throws(() => bad("90-80"), /Invalid port/);
  assert.deepEqual(parsePorts("80, 8000-8010"), [[80, 80], [8000, 8010]]);
});

test("names: what goes into an interface name, an nft identifier and a path is checked again", () => {
  for (const ok of ["lodgebr0", "a", "net-1.b_c", "x23456789012345"]) assert.doesNotThrow(() => assertNetworkName(ok), ok);
  for (const bad of ["", "x234567890123456", "-x", ".", "..", "a/b", "a b", 'a"b', "a;b", "a\nb", "ä"]) {
    assert.throws(() => assertNetworkName(bad), /Invalid network name/, JSON.stringify(bad));
  }
});

test("the bridge's MAC is derived from its name: stable, locally administered, unicast", () => {
  const mac = stableHwaddr("lodgebr0");
  assert.equal(stableHwaddr("lodgebr0"), mac);
  assert.notEqual(stableHwaddr("lodgebr1"), mac);
  assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  assert.equal(parseInt(mac.slice(0, 2), 16) & 0x03, 0x02);
});

test("leases: dnsmasq's file, IPv4 and IPv6, and the static hosts first", () => {
  const text = [
    "1765130000 00:16:3e:aa:bb:cc 10.83.4.23 c1 01:00:16:3e:aa:bb:cc",
    "0 00:16:3e:00:00:02 10.83.4.24 * *",
    "duid 00:01:00:01:2c:00:00:01:52:54:00:12:34:56",
    "1765130100 1234567 fd42:1:2:3:0:0:0:17 c1 00:01:00:01:2c:11:22:33:00:16:3e:aa:bb:cc",
    "1765130200 89 fd42:1:2:3::18 * 00:03:00:01:00:16:3e:00:00:02",
    "1765130300 90 fd42:1:2:3::19 * 00:02:00:00:ab:11:aa:bb",
    "garbage line",
    "",
  ].join("\n");
  const dynamic = parseLeaseFile(text);
  assert.deepEqual(dynamic, [
    { hostname: "c1", hwaddr: "00:16:3e:aa:bb:cc", address: "10.83.4.23", type: "dynamic", expires: 1765130000 },
    { hostname: "", hwaddr: "00:16:3e:00:00:02", address: "10.83.4.24", type: "dynamic" },
    { hostname: "c1", hwaddr: "00:16:3e:aa:bb:cc", address: "fd42:1:2:3::17", type: "dynamic", expires: 1765130100 },
    { hostname: "", hwaddr: "00:16:3e:00:00:02", address: "fd42:1:2:3::18", type: "dynamic", expires: 1765130200 },
    { hostname: "", hwaddr: "", address: "fd42:1:2:3::19", type: "dynamic", expires: 1765130300 },
  ]);
  assert.equal(macFromDuid("*"), "");
  assert.equal(macFromDuid(undefined), "");

  const merged = mergeLeases([{ hwaddr: "00:16:3E:AA:BB:CC", name: "c1", ipv4: "10.83.4.23" }, { hwaddr: "00:16:3e:00:00:09", name: "noaddr" }], dynamic);
  assert.deepEqual(merged[0], { hostname: "c1", hwaddr: "00:16:3e:aa:bb:cc", address: "10.83.4.23", type: "static" });
  assert.equal(merged.filter((l) => l.address === "10.83.4.23").length, 1, "a static host's own lease is listed once");
  assert.equal(merged.length, 5);
});
