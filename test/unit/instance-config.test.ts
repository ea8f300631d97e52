import test from "node:test";
import assert from "node:assert/strict";
import { validateInstanceName } from "../../src/instances/config/name.js";
import { validateInstanceConfig } from "../../src/instances/config/keys.js";
import { validateDevices } from "../../src/instances/config/devices.js";

test("instance names follow LXD's hostname rules", () => {
  for (const ok of ["c1", "web-01", "A", "a".repeat(63)]) assert.equal(validateInstanceName(ok), ok);
  const bad: [unknown, RegExp][] = [
    ["", /required/],
    [undefined, /required/],
    ["1abc", /must not start with a digit/],
    ["-abc", /must not start with "-"/],
    ["abc-", /must not end with "-"/],
    ["a_b", /only ASCII letters/],
    ["a.b", /only ASCII letters/],
    ["a/b", /only ASCII letters/],
    ["a".repeat(64), /longer than 63/],
  ];
  for (const [name, re] of bad) assert.throws(() => validateInstanceName(name), re, String(name));
});

test("instance config: known keys are checked, unknown keys are refused by name", () => {
  assert.deepEqual(
    validateInstanceConfig({
      "limits.memory": "64MiB",
      "limits.cpu": "0-1,3",
      "limits.cpu.allowance": "25ms/100ms",
      "security.privileged": "true",
      "user.anything": "x",
      "environment.FOO": "bar",
      "volatile.idmap.base": "100000",
    }),
    {
      "limits.memory": "64MiB",
      "limits.cpu": "0-1,3",
      "limits.cpu.allowance": "25ms/100ms",
      "security.privileged": "true",
      "user.anything": "x",
      "environment.FOO": "bar",
      "volatile.idmap.base": "100000",
    },
  );
  const bad: [Record<string, string>, RegExp][] = [
    [{ "limits.bogus": "1" }, /Unknown instance config key "limits.bogus"/],
    [{ "security.privileged": "maybe" }, /"security.privileged".*not a boolean/],
    [{ "limits.memory": "lots" }, /"limits.memory".*not a size/],
    [{ "limits.memory": "1MiB" }, /at least 4MiB/],
    [{ "limits.memory": "150%" }, /between 1% and 100%/],
    [{ "limits.cpu": "0" }, /at least 1/],
    [{ "limits.cpu": "3-1" }, /runs backwards/],
    [{ "limits.cpu.allowance": "fast" }, /neither a percentage/],
    [{ "limits.processes": "0" }, /greater than zero/],
    [{ "limits.memory.enforce": "strict" }, /not one of hard, soft/],
    [{ "user.": "x" }, /Unknown instance config key "user."/],
  ];
  for (const [cfg, re] of bad) assert.throws(() => validateInstanceConfig(cfg), re, JSON.stringify(cfg));
});

test("devices: valid definitions pass, faults name the device and the key", () => {
  const devices = {
    root: { type: "disk", path: "/", pool: "default" },
    data: { type: "disk", source: "/srv/data", path: "/data", readonly: "true" },
    eth0: { type: "nic", nictype: "bridged", parent: "lodgebr0", hwaddr: "00:16:3e:aa:bb:cc", mtu: "1500" },
    eth1: { type: "nic", network: "lodgebr0", "ipv4.address": "10.0.3.5", "ipv6.address": "fd42::5" },
    eth2: { type: "nic", nictype: "macvlan", parent: "eth0" },
    eth3: { type: "nic", nictype: "p2p" },
    web: { type: "proxy", listen: "tcp:127.0.0.1:8080", connect: "tcp:127.0.0.1:80" },
    sock: { type: "proxy", listen: "unix:/run/x.sock", connect: "unix:/run/y.sock" },
    null0: { type: "unix-char", source: "/dev/null" },
    off: { type: "none" },
  };
  assert.deepEqual(validateDevices(devices), devices);
  const bad: [unknown, RegExp][] = [
    [{ d: { path: "/x" } }, /Invalid device "d": "type" is required/],
    [{ d: { type: "gpu" } }, /unknown device type "gpu"/],
    [{ d: { type: "disk", path: "/x" } }, /"source" is required/],
    [{ d: { type: "disk", source: "/a", path: "rel" } }, /"path" must be an absolute path/],
    [{ d: { type: "disk", path: "/", source: "/a", pool: "p" } }, /takes a pool, not a source/],
    [{ d: { type: "disk", source: "/a", path: "/x", colour: "red" } }, /Unknown disk device config key "colour"/],
    [{ d: { type: "nic", nictype: "ipvlan", parent: "eth0" } }, /nictype "ipvlan" is not supported \(use bridged, macvlan, p2p, or network=NETWORK\)/],
    [{ d: { type: "nic", nictype: "macvlan" } }, /"parent" is required for a macvlan nic/],
    [{ d: { type: "nic", nictype: "p2p", parent: "br0" } }, /a p2p nic has no "parent"/],
    [{ d: { type: "nic", nictype: "bridged", parent: "br0", "ipv4.address": "10.0.0.5" } }, /"ipv4.address" needs a managed network/],
    [{ d: { type: "nic", network: "n1", "ipv4.address": "10.0.0.300" } }, /"ipv4.address" "10.0.0.300" is not an IPv4 address/],
    [{ d: { type: "nic", network: "n1", parent: "br0" } }, /"network" cannot be combined/],
    [{ d: { type: "nic", nictype: "bridged" } }, /"parent" is required/],
    [{ d: { type: "nic", nictype: "bridged", parent: "br0", hwaddr: "zz" } }, /not a MAC address/],
    [{ d: { type: "nic", nictype: "bridged", parent: "br0", mtu: "10" } }, /between 576 and 65535/],
    [{ d: { type: "proxy", listen: "tcp:1.2.3.4", connect: "tcp:127.0.0.1:80" } }, /Invalid device "d": "listen" "tcp:1.2.3.4" needs ADDRESS:PORT/],
    [{ d: { type: "proxy", listen: "udp:0.0.0.0:70000", connect: "udp:127.0.0.1:53" } }, /"listen" port 70000 is out of range/],
    [{ d: { type: "unix-char" } }, /"source" or "path" is required/],
    [{ d: { type: "unix-block", source: "/dev/sda", mode: "rw" } }, /not an octal mode/],
    [{ "bad name!": { type: "none" } }, /device names use/],
    [
      { a: { type: "disk", source: "/a", path: "/same" }, b: { type: "disk", source: "/b", path: "/same" } },
      /both use path "\/same"/,
    ],
    [[], /must be a map/],
  ];
  for (const [devs, re] of bad) assert.throws(() => validateDevices(devs), re, JSON.stringify(devs));
});
