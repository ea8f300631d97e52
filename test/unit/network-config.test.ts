import test from "node:test";
import assert from "node:assert/strict";
import { checkNetworkName, fillBridgeDefaults, resolveBridge, validateBridgeConfig } from "../../src/networks/config.js";
import { checkForwardPort, checkListenAddress, portCount } from "../../src/networks/forward-rules.js";
import { staticAddressProblem } from "../../src/networks/addresses.js";
import type { NetworkRecord } from "../../src/networks/record.js";

test("bridge keys are checked with LXD's names, and bad values name the key", () => {
  assert.deepEqual(validateBridgeConfig({ "ipv4.address": "10.5.0.1/24", "ipv4.nat": "true", "user.x": "y" }), { "ipv4.address": "10.5.0.1/24", "ipv4.nat": "true", "user.x": "y" });
  assert.throws(() => validateBridgeConfig({ "ipv4.address": "10.5.0.0/24" }), /"ipv4.address".*network address/);
  assert.throws(() => validateBridgeConfig({ "ipv4.address": "10.5.0.255/24" }), /broadcast/);
  assert.throws(() => validateBridgeConfig({ "ipv4.address": "10.5.0.1" }), /prefix length \/32/);
  assert.throws(() => validateBridgeConfig({ "ipv4.address": "banana" }), /"ipv4.address".*not an address/);
  assert.throws(() => validateBridgeConfig({ "ipv4.address": "fd42::1/64" }), /not an IPv4 address/);
  assert.throws(() => validateBridgeConfig({ "ipv6.address": "10.0.0.1/24" }), /not an IPv6 address/);
  assert.throws(() => validateBridgeConfig({ "dns.mode": "loud" }), /"dns.mode"/);
  assert.throws(() => validateBridgeConfig({ "bridge.mtu": "100" }), /"bridge.mtu"/);
  assert.throws(() => validateBridgeConfig({ "ipv4.dhcp.ranges": "10.5.0.9-10.5.0.2" }), /ends before it starts/);
  assert.throws(() => validateBridgeConfig({ "ipv4.address": "10.5.0.1/24", "ipv4.dhcp.ranges": "10.5.0.9-10.6.0.2" }), /10\.6\.0\.2 is outside 10\.5\.0\.1\/24/);
  assert.throws(() => validateBridgeConfig({ "bridge.driver": "openvswitch" }), /"bridge.driver" is not supported by Lodge yet/);
  assert.throws(() => validateBridgeConfig({ "ipv4.colour": "red" }), /Unknown network config key "ipv4.colour"/);
});

test("create fills LXD's defaults: auto addresses with NAT", () => {
  assert.deepEqual(fillBridgeDefaults({}), { "ipv4.address": "auto", "ipv4.nat": "true", "ipv6.address": "auto", "ipv6.nat": "true" });
  assert.deepEqual(fillBridgeDefaults({ "ipv4.address": "10.1.1.1/24", "ipv6.address": "none" }), { "ipv4.address": "10.1.1.1/24", "ipv6.address": "none" });
  assert.deepEqual(fillBridgeDefaults({ "ipv4.nat": "false" }), { "ipv4.address": "auto", "ipv4.nat": "false", "ipv6.address": "auto", "ipv6.nat": "true" });
});

test("the driver's view: families present only with an address, DHCP on by default", () => {
  const r = resolveBridge("br1", { "ipv4.address": "10.1.1.1/24", "ipv4.nat": "true", "ipv6.address": "none", "ipv4.dhcp.ranges": "10.1.1.10-10.1.1.20" }, [], []);
  assert.deepEqual(r.ipv4, { cidr: "10.1.1.1/24", nat: true, dhcp: true, dhcpRanges: [["10.1.1.10", "10.1.1.20"]] });
  assert.equal(r.ipv6, undefined);
  assert.equal(r.dnsDomain, "lodge");
  assert.equal(r.dnsMode, "managed");
  const v6 = resolveBridge("br1", { "ipv6.address": "fd42::1/64" }, [], []).ipv6!;
  assert.equal(v6.routerAdvertisements, true);
  assert.equal(v6.dhcp, false, "stateless unless ipv6.dhcp.stateful");
});

test("network names are interface names", () => {
  assert.equal(checkNetworkName("lodgebr0"), "lodgebr0");
  for (const bad of ["", "a/b", "x".repeat(16), "-x", "a b", "none"]) assert.throws(() => checkNetworkName(bad), /network name/i);
});

test("static NIC addresses must sit inside the network and not be its gateway", () => {
  const net: NetworkRecord = { name: "n", project: "default", type: "bridge", description: "", config: { "ipv4.address": "10.1.1.1/24", "ipv6.address": "none" }, phase: "ready" };
  assert.equal(staticAddressProblem(net, "ipv4", "10.1.1.50"), undefined);
  assert.match(staticAddressProblem(net, "ipv4", "10.1.2.50")!, /outside network "n"/);
  assert.match(staticAddressProblem(net, "ipv4", "10.1.1.1")!, /gateway/);
  assert.match(staticAddressProblem(net, "ipv6", "fd42::5")!, /no IPv6 subnet/);
});

test("forward ports: lists and ranges, equal counts, targets inside the subnet", () => {
  assert.equal(portCount("80,8000-8010", "listen_port"), 12);
  assert.throws(() => portCount("80-70", "listen_port"), /listen_port/);
  assert.throws(() => portCount("0", "listen_port"), /1-65535/);
  const p = checkForwardPort({ protocol: "tcp", listen_port: "8080", target_address: "10.1.1.5", target_port: "80" }, ["10.1.1.1/24"]);
  assert.equal(p.target_port, "80");
  assert.throws(() => checkForwardPort({ protocol: "tcp", listen_port: "80,81", target_address: "10.1.1.5", target_port: "80" }, ["10.1.1.1/24"]), /as many ports/);
  assert.throws(() => checkForwardPort({ protocol: "tcp", listen_port: "80", target_address: "10.2.1.5" }, ["10.1.1.1/24"]), /not inside the network's subnet/);
  assert.throws(() => checkForwardPort({ protocol: "sctp", listen_port: "80", target_address: "10.1.1.5" }, ["10.1.1.1/24"]), /protocol "sctp"/);
  assert.throws(() => checkListenAddress("0.0.0.0"), /wildcard/);
  assert.throws(() => checkListenAddress("nope"), /listen_address/);
});
