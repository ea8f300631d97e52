import test from "node:test";
import assert from "node:assert/strict";
import { formatPrefix, fromBigInt, overlaps, parseInterfaceAddress, parsePrefix, toBigInt } from "../../src/networks/ip.js";
import { addressPrefixes, conflict, pickIPv4, pickIPv6, routePrefixes } from "../../src/networks/subnets.js";

test("addresses of both families round-trip through integers", () => {
  for (const a of ["10.0.3.1", "0.0.0.0", "255.255.255.255", "::", "::1", "fd42:1:2:3::1", "fe80::216:3eff:fe00:1", "2001:db8::", "1:0:0:1::1", "1:0:1:0:1:0:1:0"])
    assert.equal(fromBigInt(toBigInt(a), a.includes(":") ? 6 : 4), a);
  assert.equal(toBigInt("::ffff:10.0.0.1"), (0xffffn << 32n) | 0x0a000001n);
});

test("prefixes clear host bits, and overlap both ways", () => {
  assert.equal(formatPrefix(parsePrefix("10.1.2.3/16")), "10.1.0.0/16");
  assert.ok(overlaps(parsePrefix("10.1.2.0/24"), parsePrefix("10.0.0.0/8")));
  assert.ok(overlaps(parsePrefix("10.0.0.0/8"), parsePrefix("10.1.2.0/24")));
  assert.ok(!overlaps(parsePrefix("10.1.2.0/24"), parsePrefix("10.1.3.0/24")));
  assert.ok(!overlaps(parsePrefix("10.0.0.0/8"), parsePrefix("fd00::/8")));
  assert.throws(() => parsePrefix("10.0.0.1/33"), /invalid prefix length/);
  assert.throws(() => parsePrefix("10.0.0/24"), /not an address/);
  assert.equal(parseInterfaceAddress("10.0.3.1/24").address, "10.0.3.1");
});

const ROUTES4 = [
  { dst: "default", dev: "eth0" },
  { dst: "10.0.0.0/16", dev: "eth0" },
  { dst: "10.3.0.0/24", dev: "wg0", table: "100" },
  { dst: "224.0.0.0/4", type: "multicast" },
  { dst: "127.0.0.0/8", dev: "lo", table: "local", type: "local" },
];

test("host routes of every table count, default and multicast ones do not", () => {
  const taken = routePrefixes(ROUTES4, 4);
  assert.deepEqual(taken.map((t) => formatPrefix(t.prefix)), ["10.0.0.0/16", "10.3.0.0/24", "127.0.0.0/8"]);
  assert.match(conflict(parsePrefix("10.3.0.0/24"), taken)!.what, /route 10\.3\.0\.0\/24 on wg0 \(table 100\)/);
  assert.equal(conflict(parsePrefix("192.168.5.0/24"), taken), undefined);
  // The network's own bridge does not conflict with itself.
  const own = addressPrefixes([{ ifname: "br9", addr_info: [{ family: "inet", local: "10.9.9.1", prefixlen: 24 }] }]);
  assert.ok(conflict(parsePrefix("10.9.9.0/24"), own));
  assert.equal(conflict(parsePrefix("10.9.9.0/24"), own, "br9"), undefined);
});

test("auto IPv4 picks a /24 in 10/8 that overlaps nothing taken, scanning when random picks keep failing", () => {
  const taken = routePrefixes([{ dst: "10.0.0.0/9", dev: "eth0" }], 4);
  for (let i = 0; i < 50; i++) {
    const picked = pickIPv4(taken)!;
    assert.match(picked, /^10\.\d+\.\d+\.1\/24$/);
    assert.equal(conflict(parseInterfaceAddress(picked).prefix, taken), undefined);
  }
  // Random always lands in the taken half: the scan still finds the first free one.
  assert.equal(pickIPv4(taken, () => 0), "10.128.0.1/24");
  // Everything taken: nothing to pick.
  assert.equal(pickIPv4(routePrefixes([{ dst: "10.0.0.0/8", dev: "x" }], 4)), undefined);
});

test("auto IPv6 picks a random fd42::/16 /64 that overlaps nothing taken", () => {
  const picked = pickIPv6([])!;
  assert.match(picked, /^fd42:[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::1\/64$/);
  const taken = routePrefixes([{ dst: "fd42::/16", dev: "x" }], 6);
  assert.equal(pickIPv6(taken), undefined);
});
