import test from "node:test";
import assert from "node:assert/strict";
import { createRequest } from "../../src/cli/network.js";
import { addNic, nicFor, nicToDetach } from "../../src/cli/network-attach.js";
import { LEASE_COLUMNS, listedNetworks, naturalCompare, NETWORK_COLUMNS, networkInfo, siByteSize, sortedLeases } from "../../src/cli/network-columns.js";
import { parseNetworkPut } from "../../src/cli/network-ref.js";
import type { Network, NetworkState } from "../../src/cli/network-types.js";
import { renderCsv, renderList } from "../../src/cli/output.js";

function network(over: Partial<Network> = {}): Network {
  return {
    name: "lodgebr0",
    description: "",
    type: "bridge",
    managed: true,
    status: "Created",
    config: { "ipv4.address": "10.1.2.1/24", "ipv6.address": "fd42::1/64" },
    used_by: ["/1.0/profiles/default", "/1.0/instances/c1"],
    ...over,
  };
}

const rows = <T>(cols: { value: (t: T) => string }[], items: T[]) => renderCsv(items.map((i) => cols.map((c) => c.value(i))));

test("network list has lxc's columns and leaves out loopback and unknown interfaces, sorted naturally", async () => {
  assert.deepEqual(NETWORK_COLUMNS.map((c) => c.header), ["NAME", "TYPE", "MANAGED", "IPV4", "IPV6", "DESCRIPTION", "USED BY", "STATE"]);
  const all = [
    network({ name: "lt10" }),
    network({ name: "lo", type: "loopback", managed: false, config: {}, used_by: [], status: "" }),
    network({ name: "eth0", type: "physical", managed: false, config: {}, used_by: null, status: "", description: "uplink" }),
    network({ name: "lt2", description: "two, with a comma" }),
    network({ name: "weird", type: "unknown", managed: false }),
  ];
  assert.equal(
    rows(NETWORK_COLUMNS, listedNetworks(all)),
    "eth0,physical,NO,,,uplink,0,\n" +
      "lt2,bridge,YES,10.1.2.1/24,fd42::1/64,\"two, with a comma\",2,CREATED\n" +
      "lt10,bridge,YES,10.1.2.1/24,fd42::1/64,,2,CREATED\n",
  );
  const table = await renderList(NETWORK_COLUMNS, listedNetworks(all), "table");
  assert.match(table, /\| NAME +\| TYPE +\| MANAGED \| IPV4 +\| IPV6 +\| DESCRIPTION +\| USED BY \| STATE +\|/);
  // json keeps the API objects, as lxc network list -f json.
  assert.deepEqual(JSON.parse(await renderList(NETWORK_COLUMNS, [all[0]!], "json")), [all[0]]);
});

test("natural order puts c2 before c10 and compares the rest by code unit", () => {
  assert.ok(naturalCompare("c2", "c10") < 0);
  assert.ok(naturalCompare("c10", "c2") > 0);
  assert.equal(naturalCompare("a1b", "a1b"), 0);
  assert.ok(naturalCompare("10.0.0.9", "10.0.0.10") < 0);
  assert.ok(naturalCompare("B", "a") < 0);
  assert.ok(naturalCompare("ab", "abc") < 0);
});

test("leases: HOSTNAME, MAC ADDRESS, IP ADDRESS, TYPE (upper case), sorted by row", () => {
  assert.deepEqual(LEASE_COLUMNS.map((c) => c.header), ["HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE"]);
  const leases = [
    { hostname: "c10", hwaddr: "00:16:3e:00:00:0a", address: "10.1.2.10", type: "dynamic" },
    { hostname: "c2", hwaddr: "00:16:3e:00:00:02", address: "10.1.2.9", type: "static" },
    { hostname: "c2", hwaddr: "00:16:3e:00:00:02", address: "fd42::9", type: "dynamic" },
  ];
  assert.equal(
    rows(LEASE_COLUMNS, sortedLeases(leases)),
    "c2,00:16:3e:00:00:02,10.1.2.9,STATIC\nc2,00:16:3e:00:00:02,fd42::9,DYNAMIC\nc10,00:16:3e:00:00:0a,10.1.2.10,DYNAMIC\n",
  );
});

test("byte counts in network info use decimal units as lxc's", () => {
  assert.equal(siByteSize(0), "0B");
  assert.equal(siByteSize(999), "999B");
  assert.equal(siByteSize(1500), "1.50kB");
  assert.equal(siByteSize(250_542_118), "250.54MB");
  assert.equal(siByteSize(17_524_040_140), "17.52GB");
});

test("network info prints name, MAC, MTU, state, type, addresses, usage and bridge as lxc", () => {
  const state: NetworkState = {
    addresses: [
      { family: "inet", address: "10.1.2.1", netmask: "24", scope: "global" },
      { family: "inet6", address: "fe80::1", netmask: "64", scope: "link" },
    ],
    counters: { bytes_received: 2048, bytes_sent: 100, packets_received: 20, packets_sent: 1 },
    hwaddr: "00:16:3e:5a:83:57",
    mtu: 1500,
    state: "up",
    type: "broadcast",
    bridge: { id: "8000.00163e5a8357", stp: false, forward_delay: 1500, vlan_default: 1, vlan_filtering: false, upper_devices: ["veth1", "veth2"] },
  };
  assert.equal(
    networkInfo("lt1", state),
    [
      "Name: lt1",
      "MAC address: 00:16:3e:5a:83:57",
      "MTU: 1500",
      "State: up",
      "Type: broadcast",
      "",
      "IP addresses:",
      "  inet\t10.1.2.1/24 (global)",
      "  inet6\tfe80::1/64 (link)",
      "",
      "Network usage:",
      "  Bytes received: 2.05kB",
      "  Bytes sent: 100B",
      "  Packets received: 20",
      "  Packets sent: 1",
      "",
      "Bridge:",
      "  ID: 8000.00163e5a8357",
      "  STP: false",
      "  Forward delay: 1500",
      "  Default VLAN ID: 1",
      "  VLAN filtering: false",
      "  Upper devices: veth1, veth2",
      "",
    ].join("\n"),
  );
  // No addresses, no counters, no bridge: those sections go (usage shows zeros).
  const bare = networkInfo("x", { addresses: null, counters: null, hwaddr: "", mtu: 1500, state: "down", type: "broadcast" });
  assert.doesNotMatch(bare, /IP addresses|Bridge/);
  assert.match(bare, /Bytes received: 0B\n/);
});

test("network create: stdin YAML, then key=value words, then --description; bridge by default", () => {
  assert.deepEqual(createRequest("lt1", ["ipv4.address=auto", "ipv6.address=none"], {}), {
    name: "lt1",
    type: "bridge",
    description: "",
    config: { "ipv4.address": "auto", "ipv6.address": "none" },
  });
  assert.deepEqual(createRequest("lt1", ["ipv4.nat=false"], { type: "bridge", description: "flag" }, { description: "yaml", config: { "ipv4.nat": "true", mtu: "1400" } }), {
    name: "lt1",
    type: "bridge",
    description: "flag",
    config: { "ipv4.nat": "false", mtu: "1400" },
  });
  assert.throws(() => createRequest("lt1", ["ipv4.address"], {}), /Invalid network setting "ipv4.address": expected KEY=VALUE/);
});

test("network edit YAML: show's output is taken back, values become strings, unknown fields are refused", async () => {
  const shown = "name: lt1\ntype: bridge\nmanaged: true\nstatus: Created\nused_by: []\nlocations: null\ndescription: d\nconfig:\n  ipv4.nat: true\n  mtu: 1400\n  ipv6.address: null\n";
  assert.deepEqual(await parseNetworkPut(shown), { description: "d", config: { "ipv4.nat": "true", mtu: "1400", "ipv6.address": "" } });
  assert.deepEqual(await parseNetworkPut(""), { config: {} });
  await assert.rejects(parseNetworkPut("devices: {}\n"), /"devices" cannot be edited/);
  await assert.rejects(parseNetworkPut("config: [a]\n"), /Invalid network config: expected a map/);
  await assert.rejects(parseNetworkPut("config: {\n"), /Invalid YAML/);
});

test("attach makes a nic on the managed network (name only when given), or bridged/macvlan on a host interface", () => {
  assert.deepEqual(nicFor(network({ name: "lt1" })), { type: "nic", network: "lt1" });
  assert.deepEqual(nicFor(network({ name: "lt1" }), "eth1"), { type: "nic", network: "lt1", name: "eth1" });
  assert.deepEqual(nicFor(network({ name: "br9", managed: false })), { type: "nic", nictype: "bridged", parent: "br9" });
  assert.deepEqual(nicFor(network({ name: "enp3s0", managed: false, type: "physical" }), "eth0"), { type: "nic", nictype: "macvlan", parent: "enp3s0", name: "eth0" });
  const devices: Record<string, Record<string, string>> = { root: { type: "disk", path: "/", pool: "default" } };
  addNic(devices, "lt1", { type: "nic", network: "lt1" }, 'on instance "c1"');
  assert.deepEqual(devices.lt1, { type: "nic", network: "lt1" });
  assert.throws(() => addNic(devices, "lt1", { type: "nic", network: "lt1" }, 'on instance "c1"'), /Device "lt1" already exists on instance "c1"/);
});

test("detach finds the one nic on the network, or the named one, and says why it cannot", () => {
  const where = 'on instance "c1"';
  const devices = {
    root: { type: "disk", path: "/", pool: "default" },
    eth1: { type: "nic", network: "lt1", name: "eth1" },
    eth2: { type: "nic", nictype: "bridged", parent: "br9" },
  };
  assert.equal(nicToDetach(devices, "lt1", where), "eth1");
  assert.equal(nicToDetach(devices, "br9", where), "eth2");
  assert.equal(nicToDetach(devices, "lt1", where, "eth1"), "eth1");
  assert.throws(() => nicToDetach(devices, "lt2", where), /No device on instance "c1" uses network "lt2"/);
  assert.throws(() => nicToDetach(devices, "lt1", where, "eth2"), /Device "eth2" on instance "c1" is not a nic on network "lt1"/);
  assert.throws(() => nicToDetach(devices, "lt1", where, "root"), /not a nic on network "lt1"/);
  assert.throws(() => nicToDetach(devices, "lt1", where, "eth9"), /Device "eth9" does not exist on instance "c1"/);
  const two = { ...devices, eth3: { type: "nic", network: "lt1" } };
  assert.throws(() => nicToDetach(two, "lt1", where), /More than one device on instance "c1" uses network "lt1" \(eth1, eth3\): name the device/);
  // A nic the instance has from a profile is changed on the profile.
  const inherited = { eth0: { type: "nic", network: "lodgebr0", name: "eth0" } };
  assert.throws(() => nicToDetach(devices, "lodgebr0", where, undefined, inherited), /Device "eth0" comes from a profile/);
  assert.throws(() => nicToDetach(devices, "lodgebr0", where, "eth0", inherited), /Device "eth0" comes from a profile/);
});
