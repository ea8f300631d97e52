import test from "node:test";
import assert from "node:assert/strict";
import { FORWARD_COLUMNS, portFromArgs, removePorts, sortedForwards } from "../../src/cli/network-forward.js";
import { parseForwardPut } from "../../src/cli/network-ref.js";
import type { NetworkForward, NetworkForwardPort } from "../../src/cli/network-types.js";
import { renderCsv } from "../../src/cli/output.js";

const fwd = (listen: string, over: Partial<NetworkForward> = {}): NetworkForward => ({ listen_address: listen, description: "", config: {}, ports: [], ...over });

test("forward list: LISTEN ADDRESS, DESCRIPTION, DEFAULT TARGET ADDRESS, PORTS, in natural order", () => {
  assert.deepEqual(FORWARD_COLUMNS.map((c) => c.header), ["LISTEN ADDRESS", "DESCRIPTION", "DEFAULT TARGET ADDRESS", "PORTS"]);
  const all = [
    fwd("192.0.2.10", { ports: null }),
    fwd("192.0.2.9", { description: "web", config: { target_address: "10.1.2.3" }, ports: [{ protocol: "tcp", listen_port: "80", target_address: "10.1.2.3" }] }),
  ];
  assert.equal(renderCsv(sortedForwards(all).map((f) => FORWARD_COLUMNS.map((c) => c.value(f)))), "192.0.2.9,web,10.1.2.3,1\n192.0.2.10,,,0\n");
});

test("port add: PROTOCOL LISTEN_PORTS TARGET_ADDRESS [TARGET_PORTS], checked", () => {
  assert.deepEqual(portFromArgs("tcp", "80,443", "10.1.2.3"), { protocol: "tcp", listen_port: "80,443", target_address: "10.1.2.3" });
  assert.deepEqual(portFromArgs("udp", "5000-5010", "10.1.2.3", "6000-6010"), { protocol: "udp", listen_port: "5000-5010", target_address: "10.1.2.3", target_port: "6000-6010" });
  assert.throws(() => portFromArgs("sctp", "80", "10.1.2.3"), /Invalid protocol "sctp": tcp or udp/);
  assert.throws(() => portFromArgs("tcp", "http", "10.1.2.3"), /Invalid listen ports "http"/);
  assert.throws(() => portFromArgs("tcp", "80", "10.1.2.3", "80-"), /Invalid target ports "80-"/);
});

test("port remove: by protocol and listen ports; several matches need --force, none is an error", () => {
  const ports: NetworkForwardPort[] = [
    { protocol: "tcp", listen_port: "80", target_address: "10.0.0.2" },
    { protocol: "tcp", listen_port: "443", target_address: "10.0.0.2" },
    { protocol: "udp", listen_port: "53", target_address: "10.0.0.3" },
  ];
  assert.deepEqual(removePorts(ports, "tcp", "443", false), [ports[0], ports[2]]);
  assert.deepEqual(removePorts(ports, "udp", undefined, false), [ports[0], ports[1]]);
  assert.throws(() => removePorts(ports, "tcp", undefined, false), /2 ports match: use --force to remove them all/);
  assert.deepEqual(removePorts(ports, "tcp", undefined, true), [ports[2]]);
  assert.deepEqual(removePorts(ports, undefined, undefined, true), []);
  assert.throws(() => removePorts(ports, "udp", "80", true), /No matching port\(s\) found/);
  assert.equal(ports.length, 3, "the list given is not changed");
});

test("forward edit YAML: show's output is taken back; ports are checked field by field", async () => {
  const shown =
    "listen_address: 192.0.2.1\nlocation: none\ndescription: pub\nconfig:\n  target_address: 10.0.0.9\nports:\n  - protocol: tcp\n    listen_port: 80\n    target_address: 10.0.0.2\n    target_port: 8080\n";
  assert.deepEqual(await parseForwardPut(shown), {
    description: "pub",
    config: { target_address: "10.0.0.9" },
    ports: [{ protocol: "tcp", listen_port: "80", target_address: "10.0.0.2", target_port: "8080" }],
  });
  assert.deepEqual(await parseForwardPut("config: {}\n"), { config: {} });
  await assert.rejects(parseForwardPut("ports: {}\n"), /ports must be a list/);
  await assert.rejects(parseForwardPut("ports:\n  - protocol: tcp\n    listen_port: 80\n"), /Invalid port 1: "target_address" is required/);
  await assert.rejects(parseForwardPut("ports:\n  - protocol: tcp\n    listen_port: 80\n    target_address: 10.0.0.2\n    weight: 3\n"), /Invalid port 1: unknown field "weight"/);
  await assert.rejects(parseForwardPut("name: x\n"), /"name" cannot be edited/);
});
