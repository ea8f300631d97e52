import test from "node:test";
import assert from "node:assert/strict";
import { validateDevices } from "../../src/instances/config/devices.js";
import { devMajor, devMinor, unixDeviceNode, type HostDevice } from "../../src/instances/devices/unix.js";
import { checkDevicesApplied, runConfig } from "../../src/instances/expand.js";
import { renderLxcConfig, type LxcHostFacts } from "../../src/instances/drivers/lxc/config.js";
import { containerCgroup } from "../../src/instances/drivers/lxc/hotplug.js";
import { diffRunConfigs, emptyRunConfig, isEmptyDiff, type DeviceNodeSpec, type MountSpec, type RunConfig } from "../../src/instances/runconfig.js";

const host = new Map<string, HostDevice | null>([
  ["/dev/zero", { type: "c", major: 1, minor: 5 }],
  ["/dev/loop0", { type: "b", major: 7, minor: 0 }],
  ["/etc/passwd", { type: "other", major: 0, minor: 0 }],
  ["/dev/nope", null],
]);

test("unix devices: numbers from the host source, or as given; owner and mode as the container sees them", () => {
  assert.deepEqual(unixDeviceNode("z", { type: "unix-char", source: "/dev/zero", path: "/dev/myzero" }, host), {
    device: "z",
    type: "c",
    path: "/dev/myzero",
    major: 1,
    minor: 5,
    uid: 0,
    gid: 0,
    mode: 0o660,
  });
  // path defaults to source; given numbers win over the host's; uid/gid/mode as given.
  assert.deepEqual(unixDeviceNode("z", { type: "unix-char", source: "/dev/zero", minor: "3", uid: "1000", gid: "5", mode: "0640" }, host), {
    device: "z",
    type: "c",
    path: "/dev/zero",
    major: 1,
    minor: 3,
    uid: 1000,
    gid: 5,
    mode: 0o640,
  });
  // Both numbers given: no host node needed at all.
  assert.equal(unixDeviceNode("n", { type: "unix-char", path: "/dev/mine", major: "10", minor: "200" }, new Map())?.major, 10);
  assert.equal(unixDeviceNode("b", { type: "unix-block", source: "/dev/loop0" }, host)?.type, "b");
});

test("unix devices: a missing source is skipped with required=false, else a 400 naming the device", () => {
  assert.equal(unixDeviceNode("m", { type: "unix-char", source: "/dev/nope", required: "false" }, host), undefined);
  assert.throws(() => unixDeviceNode("m", { type: "unix-char", source: "/dev/nope" }, host), (e: Error & { status?: number }) => {
    assert.match(e.message, /Device "m": source "\/dev\/nope" does not exist on the host/);
    assert.equal(e.status, 400);
    return true;
  });
  // lenient: what may already run is described without failing.
  assert.equal(unixDeviceNode("m", { type: "unix-char", source: "/dev/nope" }, host, true), undefined);
  assert.throws(() => unixDeviceNode("w", { type: "unix-char", source: "/dev/loop0" }, host), /"\/dev\/loop0" is a block device, not a character device \(use unix-block\)/);
  assert.throws(() => unixDeviceNode("w", { type: "unix-block", source: "/etc/passwd" }, host), /"\/etc\/passwd" is not a device, not a block device/);
});

test("dev_t decoding matches the kernel's encoding (large majors and minors too)", () => {
  assert.equal(devMajor(0x0105n), 1);
  assert.equal(devMinor(0x0105n), 5);
  // major 259, minor 0x12345: minor low 8 bits at 0-7, high bits at 20-31; major at 8-19.
  const dev = (259n << 8n) | 0x45n | (0x123n << 20n);
  assert.equal(devMajor(dev), 259);
  assert.equal(devMinor(dev), 0x12345);
});

test("unix devices: validation refuses bad numbers, relative or escaping paths; they are applied now", () => {
  const ok = validateDevices({ z: { type: "unix-char", source: "/dev/zero", path: "/dev/myzero", major: "1", minor: "5", mode: "0666" } });
  assert.equal(ok.z!.major, "1");
  checkDevicesApplied({ a: { type: "unix-char", source: "/dev/zero" }, b: { type: "unix-block", source: "/dev/loop0" } });
  const bad: [Record<string, string>, RegExp][] = [
    [{ type: "unix-char", source: "/dev/zero", major: "abc" }, /Invalid device "d": .*"major".*not an integer/],
    [{ type: "unix-char", source: "/dev/zero", major: "4096" }, /Invalid device "d": "major" 4096 is out of range \(0-4095\)/],
    [{ type: "unix-char", source: "/dev/zero", minor: "-1" }, /"minor" -1 is out of range/],
    [{ type: "unix-char", source: "/dev/zero", minor: "1048576" }, /"minor" 1048576 is out of range/],
    [{ type: "unix-char", source: "/dev/zero", uid: "-2" }, /"uid" -2 is out of range/],
    [{ type: "unix-char", source: "dev/zero" }, /"source" must be an absolute path/],
    [{ type: "unix-char", source: "/dev/zero", path: "dev/z" }, /"path" must be an absolute path/],
    [{ type: "unix-char", source: "/dev/zero", path: "/dev/../etc/z" }, /is not a path inside the instance/],
    [{ type: "unix-block", source: "/dev/loop0", mode: "666x" }, /not an octal mode/],
  ];
  for (const [d, re] of bad) assert.throws(() => validateDevices({ d }), re, JSON.stringify(d));
  // The path inside defaults to the source, and two devices cannot share it.
  assert.throws(
    () => validateDevices({ a: { type: "unix-char", source: "/dev/zero" }, b: { type: "unix-char", source: "/dev/null", path: "/dev/zero" } }),
    /both use path "\/dev\/zero"/,
  );
});

test("run-config: a unix device is a node and an rwm rule; a skipped one is neither", () => {
  const run = runConfig(
    {},
    {
      z: { type: "unix-char", source: "/dev/zero", path: "/dev/myzero" },
      l: { type: "unix-block", source: "/dev/loop0" },
      gone: { type: "unix-char", source: "/dev/nope", required: "false" },
    },
    { memory: 1 << 30, devices: host },
  );
  assert.deepEqual(run.deviceNodes.map((n) => `${n.device} ${n.type} ${n.path} ${n.major}:${n.minor}`), ["z c /dev/myzero 1:5", "l b /dev/loop0 7:0"]);
  assert.deepEqual(run.deviceRules, [
    { allow: true, rule: "c 1:5 rwm" },
    { allow: true, rule: "b 7:0 rwm" },
  ]);
});

const hybrid: LxcHostFacts = {
  cgroup: { v1: { devices: "/sys/fs/cgroup/devices", memory: "/sys/fs/cgroup/memory" }, unified: "/sys/fs/cgroup/unified", unifiedControllers: [] },
  memsw: true,
  apparmor: false,
};

test("liblxc config: device nodes are bound in from the device directory and allowed", () => {
  const run = runConfig({}, { z: { type: "unix-char", source: "/dev/zero", path: "/dev/my zero" } }, { memory: 1 << 30, devices: host });
  const text = renderLxcConfig({
    spec: { name: "c1", rootfs: "/r", privileged: true, run },
    ownership: "privileged",
    host: hybrid,
    paths: { consoleLog: "/l", seccomp: "/s", devices: "/var/lib/lodge/devices/c1" },
    sourceKinds: new Map(),
  }).split("\n");
  assert.ok(text.includes("lxc.mount.entry = /var/lib/lodge/devices/c1/unix.z dev/my\\040zero none bind,create=file 0 0"), text.join("\n"));
  assert.ok(text.includes("lxc.cgroup.devices.allow = c 1:5 rwm"));
  // Without a device directory there is nowhere to make the node: an error, not a silent skip.
  assert.throws(
    () => renderLxcConfig({ spec: { name: "c1", rootfs: "/r", privileged: true, run }, ownership: "privileged", host: hybrid, paths: { consoleLog: "/l", seccomp: "/s" }, sourceKinds: new Map() }),
    /no directory for device nodes/,
  );
});

const mount = (target: string, over: Partial<MountSpec> = {}): MountSpec => ({ source: `/src${target}`, target, readonly: false, ...over });
const node = (path: string, over: Partial<DeviceNodeSpec> = {}): DeviceNodeSpec => ({ device: path.slice(5), type: "c", path, major: 1, minor: 5, uid: 0, gid: 0, mode: 0o660, ...over });
const rc = (over: Partial<RunConfig>): RunConfig => ({ ...emptyRunConfig(), ...over });

test("run-config diff: mounts and nodes by target, changed ones removed then added; rules as a multiset", () => {
  const from = rc({
    mounts: [mount("/a"), mount("/b"), mount("/c", { readonly: true })],
    deviceNodes: [node("/dev/x"), node("/dev/y")],
    deviceRules: [
      { allow: true, rule: "c 1:5 rwm" },
      { allow: true, rule: "c 1:5 rwm" },
    ],
  });
  const to = rc({
    mounts: [mount("/a"), mount("/c", { readonly: false }), mount("/d")],
    deviceNodes: [node("/dev/x"), node("/dev/y", { mode: 0o600 })],
    deviceRules: [{ allow: true, rule: "c 1:5 rwm" }, { allow: true, rule: "b 7:0 rwm" }],
  });
  const d = diffRunConfigs(from, to);
  assert.deepEqual(d.mounts.remove.map((m) => m.target), ["/b", "/c"]);
  assert.deepEqual(d.mounts.add.map((m) => `${m.target} ${m.readonly}`), ["/c false", "/d false"]);
  assert.deepEqual(d.deviceNodes.remove.map((n) => n.path), ["/dev/y"]);
  assert.deepEqual(d.deviceNodes.add.map((n) => `${n.path} ${n.mode.toString(8)}`), ["/dev/y 600"]);
  // One of the two c 1:5 rules goes (another device still needs the other).
  assert.deepEqual(d.deviceRules.remove, [{ allow: true, rule: "c 1:5 rwm" }]);
  assert.deepEqual(d.deviceRules.add, [{ allow: true, rule: "b 7:0 rwm" }]);
  assert.equal(d.limitsChanged, false);
  assert.deepEqual(d.other, []);
  assert.ok(!isEmptyDiff(d));
});

test("run-config diff: equal configs (undefined fields aside) are empty; NICs, limits and proxies are told apart", () => {
  const a = rc({ mounts: [mount("/a", { shift: undefined })] });
  const b = rc({ mounts: [{ target: "/a", readonly: false, source: "/src/a" }] });
  assert.ok(isEmptyDiff(diffRunConfigs(a, b)));
  const eth0 = { name: "eth0", type: "bridged" as const, parent: "br0" };
  const nics = diffRunConfigs(a, rc({ ...b, nics: [eth0] }));
  assert.deepEqual(nics.nics, { add: [eth0], remove: [] }, "NICs are applied live");
  assert.deepEqual(nics.other, []);
  assert.ok(!isEmptyDiff(nics));
  assert.equal(nics.mounts.add.length + nics.mounts.remove.length, 0);
  const moved = diffRunConfigs(rc({ ...b, nics: [eth0] }), rc({ ...b, nics: [{ ...eth0, parent: "br1" }] }));
  assert.deepEqual(moved.nics, { add: [{ ...eth0, parent: "br1" }], remove: [eth0] }, "a changed NIC goes and comes back");
  assert.equal(diffRunConfigs(a, rc({ ...b, limits: { processes: 10 } })).limitsChanged, true);
  const proxy = { device: "web", listen: { protocol: "tcp" as const, host: "127.0.0.1", ports: [{ first: 80, last: 80 }] }, connect: { protocol: "unix" as const, path: "/s" }, bind: "host" as const, uid: 0, gid: 0, mode: 0o644, securityUid: 0, securityGid: 0, proxyProtocol: false };
  const proxies = diffRunConfigs(a, rc({ ...b, proxies: [proxy] }));
  assert.equal(proxies.proxiesChanged, true, "proxy devices are applied live");
  assert.deepEqual(proxies.other, []);
  assert.ok(!isEmptyDiff(proxies));
});

test("the container's cgroup is liblxc's payload cgroup, even from a cgroup below it", () => {
  assert.equal(containerCgroup("/sys/fs/cgroup/devices/lxc.payload.c1/init.scope"), "/sys/fs/cgroup/devices/lxc.payload.c1");
  assert.equal(containerCgroup("/sys/fs/cgroup/devices/lxc.payload.c1"), "/sys/fs/cgroup/devices/lxc.payload.c1");
  assert.equal(containerCgroup("/sys/fs/cgroup/devices/other"), "/sys/fs/cgroup/devices/other");
});
