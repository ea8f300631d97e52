/**
 * The QEMU driver against real QEMU under TCG: the test guest (Debian's cloud kernel and a
 * busybox initramfs, test/helpers/vm-initramfs.ts) on a scratch qcow2 disk, one VM at a time,
 * each test's VM, taps, bridge and directories removed in t.after whether it passes or not.
 */
import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { QemuDriver } from "../../src/instances/drivers/qemu/driver.js";
import { findQemu } from "../../src/instances/drivers/qemu/process.js";
import { QmpClient } from "../../src/instances/drivers/qemu/qmp.js";
import { recordedTaps } from "../../src/instances/drivers/qemu/tap.js";
import type { VmSpec } from "../../src/instances/driver.js";
import { emptyRunConfig, type MountSpec, type NicSpec } from "../../src/instances/runconfig.js";
import { eventually } from "../helpers/eventually.js";
import { testGuest } from "../helpers/vm-initramfs.js";

const exec = promisify(execFile);
const exists = (p: string) => access(p).then(() => true, () => false);

interface Vm {
  driver: QemuDriver;
  spec: VmSpec;
  name: string;
  base: string;
}

/** A VM of 256 MiB on a fresh qcow2 disk, created (and started unless start=false); removed in t.after. */
async function vm(t: TestContext, opts: { start?: boolean; nics?: NicSpec[]; mounts?: MountSpec[] } = {}): Promise<Vm> {
  const guest = await testGuest();
  const base = await mkdtemp(join(tmpdir(), "lodge-qemu-"));
  const name = `vm${randomBytes(3).toString("hex")}`;
  const driver = new QemuDriver({ dir: join(base, "virtual-machines"), accelerator: "tcg" });
  const disk = join(base, "root.qcow2");
  await exec("qemu-img", ["create", "-q", "-f", "qcow2", disk, "64M"]);
  const spec: VmSpec = {
    name,
    rootfs: "",
    rootDisk: disk,
    boot: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline },
    cpus: 1,
    memoryBytes: 256 * 1024 * 1024,
    secureboot: false,
    cloudInit: { userData: "#cloud-config\nhostname: tested\n" },
    stateDir: join(base, "state"),
    run: { ...emptyRunConfig(), nics: opts.nics ?? [], mounts: opts.mounts ?? [] },
  };
  t.after(async () => {
    const pid = await findQemu(driver.paths(name).pidfile);
    if (pid) process.kill(pid, "SIGKILL");
    await driver.delete(name, { force: true }).catch(() => undefined);
    driver.close();
    await rm(base, { recursive: true, force: true });
  });
  await driver.init();
  await driver.create(spec);
  if (opts.start !== false) await driver.start(spec);
  return { driver, spec, name, base };
}

/** Waits for the guest's /init to have set up its power button handler. */
async function guestReady(v: Vm): Promise<string> {
  return eventually(
    async () => {
      const log = await readFile(v.driver.consoleLogPath(v.name), "utf8").catch(() => "");
      return log.includes("lodge-test-guest: ready") && log;
    },
    "the test guest to be ready on its serial console",
    60_000,
    100,
  );
}

/** What a VM leaves on the host: QEMU processes naming its directory, its directory, tap devices. */
async function leftovers(v: Vm, taps: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replace(/\0/g, " ");
    if (cmd.includes(v.base) && cmd.includes("qemu")) found.push(`process ${pid}: ${cmd}`);
  }
  if (await exists(v.driver.paths(v.name).dir)) found.push(`dir ${v.driver.paths(v.name).dir}: ${(await readdir(v.driver.paths(v.name).dir)).join(" ")}`);
  for (const tap of taps) if (await exists(`/sys/class/net/${tap}`)) found.push(`tap ${tap}`);
  return found;
}

/** A bridge of the test's own, removed in t.after. */
async function bridge(t: TestContext): Promise<string> {
  const name = `lbq${randomBytes(4).toString("hex")}`;
  t.after(() => exec("ip", ["link", "del", name]).catch(() => undefined));
  await exec("ip", ["link", "add", name, "type", "bridge"]);
  await exec("ip", ["link", "set", name, "up"]);
  return name;
}

test("start: QEMU runs with a pid, QMP answers, the serial console shows the kernel booting, on its socket too", async (t) => {
  const v = await vm(t, { start: false });
  const started = Date.now();
  const { pid } = await v.driver.start(v.spec);
  const startMs = Date.now() - started;
  assert.ok(pid > 0);
  assert.deepEqual(await v.driver.status(v.name), { status: "Running", pid });
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
  assert.ok(cmdline[0]!.endsWith("qemu-system-x86_64"));
  assert.ok(cmdline.includes("-daemonize"));
  // The console socket carries what the guest prints, as the log does.
  const seen: Buffer[] = [];
  const console = net.createConnection(v.driver.consoleSocket(v.name));
  console.on("data", (b: Buffer) => seen.push(b));
  t.after(() => console.destroy());
  const log = await guestReady(v);
  const readyMs = Date.now() - started;
  assert.match(log, /Linux version 6\.\d+\.\d+/, "the kernel's banner");
  assert.match(log, /lodge-test-guest: up, kernel 6\./);
  assert.match(log, /lodge-test-guest: disks vda vdb/, "the root disk and the cloud-init seed");
  assert.match(log, /lodge-test-guest: ports .*org\.lodge\.agent\.0/, "the agent's virtio-serial port");
  assert.match(log, /lodge-test-guest: ports .*org\.qemu\.guest_agent\.0/);
  await eventually(async () => Buffer.concat(seen).toString().includes("lodge-test-guest: ready"), "the console socket to carry the guest's output", 10_000, 50);
  // QMP through a connection of our own once the driver lets its own go (QEMU serves one client).
  v.driver.close();
  const qmp = await QmpClient.connect(v.driver.paths(v.name).qmp);
  t.after(() => qmp.close());
  assert.equal(qmp.version, (await v.driver.info())!.version);
  assert.deepEqual(await qmp.execute("query-status"), { status: "running", singlestep: false, running: true });
  const memory = await qmp.execute<{ "base-memory": number }>("query-memory-size-summary");
  assert.equal(memory["base-memory"], 256 * 1024 * 1024);
  qmp.close();
  const st = await v.driver.state(v.name);
  assert.equal(st.status, "Running");
  assert.ok(st.cpu.usage_ns > 0);
  assert.ok(st.memory.usage > 0);
  t.diagnostic(`start ${startMs} ms, serial "ready" ${readyMs} ms after start; QEMU RSS ${(st.memory.usage / 2 ** 20).toFixed(0)} MiB for 256 MiB of guest RAM`);
});

test("freeze, unfreeze, and a graceful stop: the ACPI power button powers the guest off within seconds", async (t) => {
  const v = await vm(t);
  await guestReady(v);
  await v.driver.freeze(v.name);
  assert.equal((await v.driver.status(v.name)).status, "Frozen");
  assert.equal((await v.driver.state(v.name)).status, "Frozen");
  await v.driver.unfreeze(v.name);
  assert.equal((await v.driver.status(v.name)).status, "Running");
  // Frozen again: a stop resumes the guest so it can see the button.
  await v.driver.freeze(v.name);
  const t0 = Date.now();
  await v.driver.stop(v.name, { timeoutMs: 20_000 });
  const ms = Date.now() - t0;
  assert.deepEqual(await v.driver.status(v.name), { status: "Stopped", pid: 0 });
  assert.match(await readFile(v.driver.consoleLogPath(v.name), "utf8"), /lodge-test-guest: power button/, "the guest saw the button and powered off");
  assert.ok(ms < 10_000, `stopped in ${ms} ms`);
  t.diagnostic(`graceful stop ${ms} ms`);
});

test("a guest that ignores the button is killed at the timeout, and a force stop kills at once", async (t) => {
  const v = await vm(t);
  // Before /init has its handler, the button does nothing: the timeout must end it.
  const t0 = Date.now();
  await v.driver.stop(v.name, { timeoutMs: 300 });
  assert.deepEqual(await v.driver.status(v.name), { status: "Stopped", pid: 0 });
  assert.ok(Date.now() - t0 < 10_000);
  await v.driver.start(v.spec);
  const t1 = Date.now();
  await v.driver.stop(v.name, { force: true });
  assert.deepEqual(await v.driver.status(v.name), { status: "Stopped", pid: 0 });
  assert.doesNotMatch(await readFile(v.driver.consoleLogPath(v.name), "utf8"), /power button/);
  t.diagnostic(`force stop ${Date.now() - t1} ms`);
});

test("a QEMU killed with SIGKILL is reported through watchStop, and is Stopped", async (t) => {
  const v = await vm(t);
  const { pid } = await v.driver.status(v.name);
  let calls = 0;
  const notified = new Promise<void>((resolve) => {
    const end = v.driver.watchStop(v.name, () => {
      calls++;
      end();
      resolve();
    });
  });
  // The watch is in place once the monitor is connected; a status call goes through it.
  await v.driver.status(v.name);
  process.kill(pid, "SIGKILL");
  await notified;
  assert.equal(calls, 1);
  await eventually(async () => (await v.driver.status(v.name)).status === "Stopped", "the killed VM to read as Stopped", 5_000, 20);
  assert.equal((await v.driver.state(v.name)).pid, 0);
  // A start after the crash finds nothing in its way.
  await v.driver.start(v.spec);
  assert.equal((await v.driver.status(v.name)).status, "Running");
});

test("a watch on a stopped VM is called at once", async (t) => {
  const v = await vm(t, { start: false });
  await new Promise<void>((resolve) => v.driver.watchStop(v.name, resolve));
});

test("a new driver object, as after a lodged restart, finds the running VM and stops it", async (t) => {
  const v = await vm(t);
  await guestReady(v);
  const { pid } = await v.driver.status(v.name);
  v.driver.close(); // the old lodged's connections go with it
  const fresh = new QemuDriver({ dir: v.driver.root, accelerator: "tcg" });
  t.after(() => fresh.close());
  assert.deepEqual(await fresh.status(v.name), { status: "Running", pid });
  await fresh.freeze(v.name);
  assert.equal((await fresh.status(v.name)).status, "Frozen");
  await fresh.unfreeze(v.name);
  let stopped = false;
  fresh.watchStop(v.name, () => (stopped = true));
  await fresh.stop(v.name, { timeoutMs: 20_000 });
  assert.ok(stopped, "the watch saw the stop");
  assert.deepEqual(await fresh.status(v.name), { status: "Stopped", pid: 0 });
  assert.match(await readFile(fresh.consoleLogPath(v.name), "utf8"), /lodge-test-guest: power button/);
});

test("a NIC on a bridge: a tap with the NIC's MAC, a port of the bridge, removed at stop; a shared directory; delete leaves nothing", async (t) => {
  const br = await bridge(t);
  const mac = "00:16:3e:aa:bb:cc";
  const share = await mkdtemp(join(tmpdir(), "lodge-qemu-share-"));
  t.after(() => rm(share, { recursive: true, force: true }));
  const v = await vm(t, {
    nics: [{ name: "eth0", type: "bridged", parent: br, hwaddr: mac }],
    mounts: [
      { source: share, target: "/data", readonly: true },
      { source: join(share, "missing"), target: "/opt", readonly: false, optional: true },
    ],
  });
  const taps = (await recordedTaps(v.driver.paths(v.name).taps)).map((x) => x.tap);
  assert.equal(taps.length, 1);
  const tap = taps[0]!;
  assert.match(tap, /^tap[0-9a-f]{8}$/);
  const link = JSON.parse((await exec("ip", ["-j", "-d", "link", "show", "dev", tap])).stdout)[0];
  assert.equal(link.master, br);
  assert.equal(link.linkinfo.info_kind, "tun");
  assert.ok(!link.linkinfo.info_data.multi_queue, "single queue");
  const log = await guestReady(v);
  assert.match(log, /lodge-test-guest: nics .*eth0/, "the guest has its virtio NIC");
  const cfg = await readFile(v.driver.paths(v.name).config, "utf8");
  assert.match(cfg, new RegExp(`virtio-net-pci,netdev=net0,mac=${mac}`));
  assert.match(cfg, new RegExp(`^local,id=fs0,path=${share},security_model=passthrough,readonly=on$`, "m"));
  assert.doesNotMatch(cfg, /id=fs1/, "a missing optional share is left out");
  const st = await v.driver.state(v.name);
  assert.equal(st.network.eth0?.host_name, tap);
  assert.equal(st.network.eth0?.hwaddr, mac);
  await v.driver.stop(v.name, { timeoutMs: 20_000 });
  assert.equal(await exists(`/sys/class/net/${tap}`), false, "the tap goes with the stop");
  await v.driver.start(v.spec);
  assert.equal(await exists(`/sys/class/net/${tap}`), true);
  await assert.rejects(v.driver.delete(v.name), /is running/);
  await v.driver.delete(v.name, { force: true });
  assert.deepEqual(await leftovers(v, taps), []);
});

test("a NIC whose bridge is missing fails the start, leaving no tap or process", async (t) => {
  const v = await vm(t, { start: false, nics: [{ name: "eth0", type: "bridged", parent: "lbqnosuchbr" }] });
  await assert.rejects(v.driver.start(v.spec), /failed to start: nic eth0: parent bridge "lbqnosuchbr" does not exist/);
  assert.deepEqual(await v.driver.status(v.name), { status: "Stopped", pid: 0 });
  assert.deepEqual(await recordedTaps(v.driver.paths(v.name).taps), []);
  await v.driver.delete(v.name);
  assert.deepEqual(await leftovers(v, []), []);
});

test("a start QEMU refuses says why, and leaves no process, tap, socket or seed", async (t) => {
  const br = await bridge(t);
  const v = await vm(t, { start: false, nics: [{ name: "eth0", type: "bridged", parent: br }] });
  const bad = { ...v.spec, boot: { ...v.spec.boot!, kernel: join(v.base, "no-such-kernel") } };
  await assert.rejects(v.driver.start(bad), /VM vm\w+ failed to start: could not (open|load) kernel/);
  assert.deepEqual(await v.driver.status(v.name), { status: "Stopped", pid: 0 });
  const tap = join("/sys/class/net", (await import("../../src/instances/drivers/qemu/tap.js")).tapName(v.name, "eth0"));
  assert.equal(await exists(tap), false);
  // The logs stay for whoever looks into the failure; no socket, pidfile, seed or tap record.
  assert.deepEqual((await readdir(v.driver.paths(v.name).dir)).sort(), ["config", "console.log", "qemu.log", "root.format"]);
  // The same VM starts once its kernel is there.
  await v.driver.start(v.spec);
  assert.equal((await v.driver.status(v.name)).status, "Running");
});
