import test from "node:test";
import assert from "node:assert/strict";
import type { ContainerSpec } from "../../src/instances/driver.js";
import { attachArgs } from "../../src/instances/drivers/lxc/exec.js";
import { limitLines, renderLxcConfig, type LxcConfigInput, type LxcHostFacts } from "../../src/instances/drivers/lxc/config.js";
import { idmappedMountsSupported } from "../../src/instances/drivers/lxc/ownership.js";
import { parseNetDev } from "../../src/instances/drivers/lxc/process.js";
import { emptyRunConfig, mergeRunConfigs } from "../../src/instances/runconfig.js";
import { controllerVersion, parseCgroupMounts, parseProcCgroup, sharesToWeight, type CgroupLayout } from "../../src/sys/cgroup.js";

/** This machine's layout: v1 controllers and an empty cgroup2 mount. */
const HYBRID: CgroupLayout = {
  v1: Object.fromEntries(["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"].map((c) => [c, `/sys/fs/cgroup/${c}`])),
  unified: "/sys/fs/cgroup/unified",
  unifiedControllers: [],
};
const UNIFIED: CgroupLayout = { v1: {}, unified: "/sys/fs/cgroup", unifiedControllers: ["cpuset", "cpu", "io", "memory", "pids"] };
const hybridHost: LxcHostFacts = { cgroup: HYBRID, memsw: true, apparmor: false };
const v2Host: LxcHostFacts = { cgroup: UNIFIED, memsw: false, apparmor: true };
const idmap = [
  { kind: "u" as const, nsid: 0, hostid: 1_000_000, range: 65536 },
  { kind: "g" as const, nsid: 0, hostid: 1_000_000, range: 65536 },
];

function input(over: Partial<ContainerSpec> = {}, rest: Partial<LxcConfigInput> = {}): LxcConfigInput {
  return {
    spec: { name: "c1", rootfs: "/var/lib/lodge/storage/c1/rootfs", privileged: false, idmap, run: emptyRunConfig(), ...over },
    ownership: "idmapped",
    host: hybridHost,
    paths: { consoleLog: "/var/lib/lodge/lxc/c1/console.log", seccomp: "/var/lib/lodge/lxc/c1/seccomp" },
    sourceKinds: new Map(),
    ...rest,
  };
}

const lines = (text: string) => text.split("\n");

test("an unprivileged container: idmapped rootfs, id map, no NIC, console log, seccomp", () => {
  const l = lines(renderLxcConfig(input()));
  for (const want of [
    "lxc.uts.name = c1",
    "lxc.rootfs.path = dir:/var/lib/lodge/storage/c1/rootfs",
    "lxc.rootfs.options = idmap=container",
    "lxc.idmap = u 0 1000000 65536",
    "lxc.idmap = g 0 1000000 65536",
    "lxc.net.0.type = empty",
    "lxc.console.logfile = /var/lib/lodge/lxc/c1/console.log",
    "lxc.seccomp.profile = /var/lib/lodge/lxc/c1/seccomp",
    "lxc.apparmor.profile = unconfined",
    "lxc.cgroup.devices.deny = a",
    "lxc.mount.auto = proc:rw sys:rw cgroup:mixed",
  ]) {
    assert.ok(l.includes(want), `missing: ${want}`);
  }
  assert.ok(!l.some((x) => x.startsWith("lxc.hook")), "no hooks");
  assert.ok(!l.some((x) => x.startsWith("lxc.include")), "no includes: the whole config is ours");
});

test("ownership: a shifted rootfs has no idmap option; privileged has no map at all", () => {
  const shifted = lines(renderLxcConfig(input({}, { ownership: "shifted" })));
  assert.ok(!shifted.includes("lxc.rootfs.options = idmap=container"));
  assert.ok(shifted.includes("lxc.idmap = u 0 1000000 65536"));
  const priv = lines(renderLxcConfig(input({ privileged: true, idmap: undefined }, { ownership: "privileged" })));
  assert.ok(!priv.some((x) => x.startsWith("lxc.idmap")));
  assert.ok(priv.includes("lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed"));
  assert.throws(() => renderLxcConfig(input({ idmap: [] })), /unprivileged but has no id map/);
  assert.throws(() => renderLxcConfig(input({ privileged: true }, { ownership: "privileged" })), /privileged and cannot have an id map/);
});

test("ownership: a layered (overlay) rootfs is not idmapped itself, but other mounts shift", () => {
  const run = mergeRunConfigs({ mounts: [{ source: "/srv", target: "/srv", readonly: false, shift: true }] });
  const l = lines(renderLxcConfig(input({ run }, { ownership: "layered", sourceKinds: new Map([["/srv", "dir"]]) })));
  assert.ok(!l.includes("lxc.rootfs.options = idmap=container"));
  assert.ok(l.includes("lxc.idmap = u 0 1000000 65536"));
  assert.ok(l.includes("lxc.mount.entry = /srv srv none bind,create=dir,idmap=container 0 0"));
});

test("AppArmor: a generated profile where the kernel has it, nesting allowed on request", () => {
  const l = lines(renderLxcConfig(input({ nesting: true }, { host: v2Host })));
  assert.ok(l.includes("lxc.apparmor.profile = generated"));
  assert.ok(l.includes("lxc.apparmor.allow_nesting = 1"));
  assert.ok(l.includes("lxc.cgroup2.devices.deny = a"), "devices through cgroup2 (liblxc's eBPF) on a unified host");
});

test("limits: v1 keys on the hybrid host, v2 keys on a unified one", () => {
  const limits = { memory: { bytes: 64 << 20, swap: false }, cpu: { cpuset: "0-1", shares: 512, quotaUs: 50_000 }, processes: 100 };
  assert.deepEqual(limitLines(limits, hybridHost), [
    "lxc.cgroup.memory.limit_in_bytes = 67108864",
    "lxc.cgroup.memory.memsw.limit_in_bytes = 67108864",
    "lxc.cgroup.cpuset.cpus = 0-1",
    "lxc.cgroup.cpu.shares = 512",
    "lxc.cgroup.cpu.cfs_period_us = 100000",
    "lxc.cgroup.cpu.cfs_quota_us = 50000",
    "lxc.cgroup.pids.max = 100",
  ]);
  assert.deepEqual(limitLines(limits, v2Host), [
    "lxc.cgroup2.memory.max = 67108864",
    "lxc.cgroup2.memory.swap.max = 0",
    "lxc.cgroup2.cpuset.cpus = 0-1",
    `lxc.cgroup2.cpu.weight = ${sharesToWeight(512)}`,
    "lxc.cgroup2.cpu.max = 50000 100000",
    "lxc.cgroup2.pids.max = 100",
  ]);
  assert.deepEqual(limitLines({ memory: { bytes: 1 << 30, enforce: "soft" } }, v2Host), ["lxc.cgroup2.memory.high = 1073741824"]);
  assert.throws(() => limitLines({ processes: 5 }, { ...v2Host, cgroup: { ...UNIFIED, unifiedControllers: ["memory"] } }), /pids cgroup controller is not available/);
  assert.throws(() => limitLines({ cpu: { cpuset: "0-1; rm" } }, hybridHost), /not a list/);
  assert.throws(() => limitLines({ memory: { bytes: -1 } }, hybridHost), /positive byte count/);
});

test("disk mounts: bind entries with create=, ro, optional, idmap, rbind, propagation; fstab escapes", () => {
  const run = mergeRunConfigs({
    mounts: [
      { source: "/srv/my data", target: "/mnt/data", readonly: true },
      { source: "/home", target: "/mnt/home", readonly: false, recursive: true, propagation: "rslave" },
      { source: "/etc/hosts", target: "/etc/host-hosts", readonly: false, shift: true },
      { source: "/missing", target: "/mnt/missing", readonly: false, optional: true },
    ],
  });
  const kinds = new Map<string, "dir" | "file">([["/srv/my data", "dir"], ["/etc/hosts", "file"], ["/home", "dir"]]);
  const l = lines(renderLxcConfig(input({ run }, { sourceKinds: kinds })));
  assert.ok(l.includes("lxc.mount.entry = /srv/my\\040data mnt/data none bind,create=dir,ro 0 0"));
  assert.ok(l.includes("lxc.mount.entry = /home mnt/home none rbind,create=dir,rslave 0 0"));
  assert.ok(l.includes("lxc.mount.entry = /etc/hosts etc/host-hosts none bind,create=file,idmap=container 0 0"));
  assert.ok(!l.some((x) => x.includes("/missing")), "a missing optional source is skipped");
  const needed = mergeRunConfigs({ mounts: [{ source: "/missing", target: "/x", readonly: false }] });
  assert.throws(() => renderLxcConfig(input({ run: needed })), /disk source \/missing does not exist/);
  const escape = mergeRunConfigs({ mounts: [{ source: "/srv", target: "/../etc", readonly: false }] });
  assert.throws(() => renderLxcConfig(input({ run: escape }, { sourceKinds: new Map([["/srv", "dir"]]) })), /not a path inside/);
  const shiftNoIdmap = mergeRunConfigs({ mounts: [{ source: "/srv", target: "/srv", readonly: false, shift: true }] });
  assert.throws(() => renderLxcConfig(input({ run: shiftNoIdmap }, { ownership: "shifted", sourceKinds: new Map([["/srv", "dir"]]) })), /shift needs idmapped mounts/);
  assert.throws(() => mergeRunConfigs({ mounts: [{ source: "/a", target: "/x", readonly: false }] }, { mounts: [{ source: "/b", target: "/x", readonly: false }] }), /two devices mount onto \/x/);
});

test("NICs, raw.lxc last, and no line breaks smuggled into values", () => {
  const run = mergeRunConfigs({ nics: [{ name: "eth0", type: "bridged", parent: "lodgebr0", hwaddr: "00:16:3e:00:00:01", mtu: 1500 }] });
  const text = renderLxcConfig(input({ run, rawLxc: "lxc.environment = A=1\n" }));
  const l = lines(text);
  assert.ok(!l.includes("lxc.net.0.type = empty"));
  for (const want of ["lxc.net.0.type = veth", "lxc.net.0.link = lodgebr0", "lxc.net.0.name = eth0", "lxc.net.0.hwaddr = 00:16:3e:00:00:01", "lxc.net.0.mtu = 1500"]) {
    assert.ok(l.includes(want), want);
  }
  assert.ok(text.trimEnd().endsWith("lxc.environment = A=1"));
  assert.throws(() => renderLxcConfig(input({ hostname: "evil\nlxc.hook.pre-start = /bin/sh" })), /line break/);
});

test("cgroup layout: mounts and /proc/<pid>/cgroup on the hybrid layout", () => {
  const mounts = [
    "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0",
    "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0",
    "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0",
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0",
  ].join("\n");
  const m = parseCgroupMounts(mounts);
  assert.deepEqual(m, { v1: { cpu: "/sys/fs/cgroup/cpu", memory: "/sys/fs/cgroup/memory", "name=systemd": "/sys/fs/cgroup/systemd" }, unified: "/sys/fs/cgroup/unified" });
  assert.equal(controllerVersion({ ...m, unifiedControllers: [] }, "memory"), 1);
  assert.equal(controllerVersion({ ...m, unifiedControllers: [] }, "pids"), undefined);
  assert.equal(controllerVersion(UNIFIED, "freezer"), 2, "cgroup2's freezer is in the core");
  assert.deepEqual(parseProcCgroup("4:memory:/lxc.payload.c1\n2:cpu,cpuacct:/lxc.payload.c1\n0::/lxc.payload.c1\n"), {
    v1: { memory: "/lxc.payload.c1", cpu: "/lxc.payload.c1", cpuacct: "/lxc.payload.c1" },
    unified: "/lxc.payload.c1",
  });
  assert.equal(sharesToWeight(1024), 39);
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(262144), 10000);
});

test("exec: lxc-attach with a clean environment, user and a cwd through sh", () => {
  const t = { name: "c1", lxcpath: "/var/lib/lodge/lxc" };
  assert.deepEqual(attachArgs(t, { command: ["echo", "hi"], env: { PATH: "/bin" }, uid: 1000, gid: 1000 }), [
    "-n", "c1", "-P", "/var/lib/lodge/lxc", "--clear-env", "-v", "PATH=/bin", "-u", "1000", "-g", "1000", "--", "echo", "hi",
  ]);
  const withCwd = attachArgs(t, { command: ["ls"], cwd: "/tmp" });
  assert.deepEqual(withCwd.slice(withCwd.indexOf("--") + 1, withCwd.indexOf("--") + 2), ["/bin/sh"]);
  assert.deepEqual(withCwd.slice(-3), ["sh", "/tmp", "ls"]);
  assert.throws(() => attachArgs(t, { command: ["true"], env: { "A=B": "x" } }), /not a valid environment variable name/);
  assert.throws(() => attachArgs(t, { command: [] }), /empty/);
});

test("idmapped mounts: by filesystem and kernel release", () => {
  assert.equal(idmappedMountsSupported(0xef53, "6.1.0-18-amd64"), true);
  assert.equal(idmappedMountsSupported(0xef53, "5.11.0"), false);
  assert.equal(idmappedMountsSupported(0x9123683e, "5.15.0"), true);
  assert.equal(idmappedMountsSupported(0x01021994, "6.2.9"), false, "tmpfs from 6.3");
  assert.equal(idmappedMountsSupported(0x73717368, "6.8.0"), false, "squashfs: no");
  assert.equal(idmappedMountsSupported(0x794c7630, "6.18.0"), false, "an overlayfs mount itself: no (only its layers)");
});

test("network counters from /proc/<pid>/net/dev", () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0
  eth0: 5000 40 1 2 0 0 0 0 3000 30 3 4 0 0 0 0
`;
  const n = parseNetDev(text);
  assert.deepEqual(Object.keys(n), ["lo", "eth0"]);
  assert.deepEqual(n.eth0!.counters, {
    bytes_received: 5000, packets_received: 40, errors_received: 1, packets_dropped_inbound: 2,
    bytes_sent: 3000, packets_sent: 30, errors_sent: 3, packets_dropped_outbound: 4,
  });
});
