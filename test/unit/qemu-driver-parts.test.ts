/**
 * The QEMU driver's pure parts: the command line generated from a spec, names of taps and MACs,
 * the probe's boot sector, and the QMP client against a scripted monitor on a unix socket.
 */
import test from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { VmSpec } from "../../src/instances/driver.js";
import { optValue, qemuArgs, shareTag, type QemuLaunch } from "../../src/instances/drivers/qemu/config.js";
import { probeBootSector } from "../../src/instances/drivers/qemu/kvm.js";
import { vmPaths } from "../../src/instances/drivers/qemu/paths.js";
import { QmpClient, QmpError } from "../../src/instances/drivers/qemu/qmp.js";
import { nicHwaddr, tapName } from "../../src/instances/drivers/qemu/tap.js";
import { emptyRunConfig } from "../../src/instances/runconfig.js";

const spec = (over: Partial<VmSpec> = {}): VmSpec => ({
  name: "vm1",
  rootfs: "",
  rootDisk: "/pool/vm1/root.img",
  cpus: 2,
  memoryBytes: 1024 ** 3,
  secureboot: true,
  cloudInit: {},
  stateDir: "/pool/vm1",
  run: emptyRunConfig(),
  ...over,
});

const launch = (over: Partial<QemuLaunch> = {}): QemuLaunch => ({
  spec: spec(),
  paths: vmPaths("/var/lib/lodge/virtual-machines", "vm1"),
  accel: "tcg",
  rootFormat: "qcow2",
  taps: [],
  ...over,
});

/** The value after each occurrence of `flag`. */
const values = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

test("a VM's command line: q35, no defaults, size from the spec, detached with a pidfile, sockets in its directory", () => {
  const a = qemuArgs(launch());
  assert.ok(a.includes("-nodefaults") && a.includes("-no-user-config") && a.includes("-daemonize"));
  assert.deepEqual(values(a, "-smp"), ["2"]);
  assert.deepEqual(values(a, "-m"), ["1024M"]);
  assert.deepEqual(values(a, "-accel"), ["tcg,thread=multi,tb-size=128"], "TCG with a bounded translation cache");
  assert.deepEqual(values(a, "-cpu"), ["max"]);
  assert.deepEqual(values(a, "-pidfile"), ["/var/lib/lodge/virtual-machines/vm1/qemu.pid"]);
  const chardevs = values(a, "-chardev");
  assert.ok(chardevs.includes("socket,id=qmp,path=/var/lib/lodge/virtual-machines/vm1/qmp.sock,server=on,wait=off"));
  assert.ok(chardevs.some((c) => c.startsWith("socket,id=console,") && c.includes("logfile=/var/lib/lodge/virtual-machines/vm1/console.log")));
  const devices = values(a, "-device");
  assert.ok(devices.includes("virtserialport,bus=vserial.0,chardev=agent,name=org.lodge.agent.0"));
  assert.ok(devices.includes("virtserialport,bus=vserial.0,chardev=qga,name=org.qemu.guest_agent.0"));
  assert.ok(devices.includes("virtio-rng-pci,id=rng"));
  assert.ok(values(a, "-drive").includes("file=/pool/vm1/root.img,format=qcow2,if=none,id=root,discard=unmap"));
  assert.deepEqual(values(a, "-accel").length, 1);
  assert.deepEqual(values(qemuArgs(launch({ accel: "kvm" })), "-cpu"), ["host"]);
});

test("UEFI: the firmware's code read-only, the VM's own NVRAM, SMM and secure pflash for secure boot; direct boot needs none", () => {
  const secure = qemuArgs(launch({ firmware: { code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", vars: "/pool/vm1/nvram.ms.fd", secureboot: true } }));
  assert.deepEqual(values(secure, "-machine"), ["q35,smm=on"]);
  assert.ok(values(secure, "-global").includes("driver=cfi.pflash01,property=secure,value=on"));
  assert.ok(values(secure, "-drive").includes("if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.ms.fd,readonly=on"));
  assert.ok(values(secure, "-drive").includes("if=pflash,format=raw,unit=1,file=/pool/vm1/nvram.ms.fd"));
  assert.ok(values(secure, "-device").includes("virtio-blk-pci,drive=root,id=root-disk,bootindex=0"));
  const direct = qemuArgs(launch({ spec: spec({ boot: { kernel: "/k", initrd: "/i", cmdline: "console=ttyS0" } }) }));
  assert.deepEqual([values(direct, "-kernel"), values(direct, "-initrd"), values(direct, "-append")], [["/k"], ["/i"], ["console=ttyS0"]]);
  assert.deepEqual(values(direct, "-machine"), ["q35"]);
  assert.ok(!direct.some((x) => x.includes("pflash")));
  assert.ok(values(direct, "-device").includes("virtio-blk-pci,drive=root,id=root-disk"), "the option ROM of -kernel holds boot index 0");
});

test("NICs become virtio-net on their taps with their MACs; seed and config drive read-only; host paths 9p shares", () => {
  const a = qemuArgs(
    launch({
      taps: [{ nic: "eth0", tap: "tap01234567", hwaddr: "00:16:3e:00:00:01", bridge: "br0" }],
      seed: "/var/lib/lodge/virtual-machines/vm1/seed.iso",
      configDrive: "/pool/vm1/config.img",
      spec: spec({ run: { ...emptyRunConfig(), mounts: [{ source: "/srv/da,ta", target: "/data", readonly: true }] } }),
    }),
  );
  assert.deepEqual(values(a, "-netdev"), ["tap,id=net0,ifname=tap01234567,script=no,downscript=no"]);
  assert.ok(values(a, "-device").includes("virtio-net-pci,netdev=net0,mac=00:16:3e:00:00:01,id=nic0"));
  assert.ok(values(a, "-drive").includes("file=/var/lib/lodge/virtual-machines/vm1/seed.iso,format=raw,if=none,id=seed,readonly=on"));
  assert.ok(values(a, "-drive").includes("file=/pool/vm1/config.img,format=raw,if=none,id=config,readonly=on"));
  assert.deepEqual(values(a, "-fsdev"), ["local,id=fs0,path=/srv/da,,ta,security_model=passthrough,readonly=on"]);
  assert.ok(values(a, "-device").includes(`virtio-9p-pci,fsdev=fs0,mount_tag=${shareTag("/data")}`));
  assert.ok(shareTag("/a/very/long/target/path/that/goes/on").length <= 31);
  assert.equal(optValue("a,b,,c"), "a,,b,,,,c");
});

test("tap names and MACs are stable per VM and NIC, and fit the kernel's limits", () => {
  assert.equal(tapName("vm1", "eth0"), tapName("vm1", "eth0"));
  assert.notEqual(tapName("vm1", "eth0"), tapName("vm1", "eth1"));
  assert.match(tapName("vm1", "eth0"), /^tap[0-9a-f]{8}$/);
  assert.equal(nicHwaddr("vm1", { name: "eth0", type: "bridged", hwaddr: "00:16:3E:AA:BB:CC" }), "00:16:3e:aa:bb:cc");
  assert.match(nicHwaddr("vm1", { name: "eth0", type: "bridged" }), /^00:16:3e(:[0-9a-f]{2}){3}$/);
  assert.equal(nicHwaddr("vm1", { name: "eth0", type: "bridged" }), nicHwaddr("vm1", { name: "eth0", type: "p2p" }));
});

test("VM paths refuse bad names and socket paths longer than a unix socket allows", () => {
  assert.throws(() => vmPaths("/x", "../etc"), /not a valid VM name/);
  assert.throws(() => vmPaths(`/${"d".repeat(90)}`, "vm1"), /longer than a unix socket allows/);
});

test("the probe's boot sector: writes 0x2a to the debug-exit port, then halts; boot signature last", () => {
  const s = probeBootSector();
  assert.equal(s.length, 512);
  assert.deepEqual([...s.subarray(0, 7)], [0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]);
  assert.deepEqual([s[510], s[511]], [0x55, 0xaa]);
});

test("QMP: greeting and capabilities, replies matched by id out of order, errors, events, and the end of the connection", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-qmp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "qmp.sock");
  let peer: net.Socket | undefined;
  const server = net.createServer((s) => {
    peer = s;
    s.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 1 } }, capabilities: [] } }) + "\r\n");
    let buf = "";
    const held: { id: string }[] = [];
    s.on("data", (d) => {
      buf += d.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; id: string };
        buf = buf.slice(nl + 1);
        if (msg.execute === "qmp_capabilities") s.write(JSON.stringify({ return: {}, id: msg.id }) + "\n");
        else if (msg.execute === "slow") held.push(msg);
        else if (msg.execute === "query-status") {
          // An event in between, then this reply, then the held one's.
          s.write(JSON.stringify({ event: "STOP", timestamp: { seconds: 1, microseconds: 0 } }) + "\n");
          s.write(JSON.stringify({ return: { status: "paused" }, id: msg.id }) + "\n");
          for (const h of held.splice(0)) s.write(JSON.stringify({ return: "slow done", id: h.id }) + "\n");
        } else if (msg.execute === "never") undefined;
        else s.write(JSON.stringify({ error: { class: "CommandNotFound", desc: `The command ${msg.execute} has not been found` }, id: msg.id }) + "\n");
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  const qmp = await QmpClient.connect(path);
  assert.equal(qmp.version, "7.2.1");
  const stopEvent = qmp.nextEvent("STOP");
  const slow = qmp.execute("slow");
  assert.deepEqual(await qmp.execute("query-status"), { status: "paused" });
  assert.equal(await slow, "slow done");
  assert.equal((await stopEvent)?.event, "STOP");
  await assert.rejects(qmp.execute("bogus"), (e: unknown) => e instanceof QmpError && e.errorClass === "CommandNotFound");
  const pending = qmp.execute("never");
  const closed = qmp.whenClosed();
  peer!.destroy();
  await closed;
  await assert.rejects(pending, /connection closed/);
  assert.equal(qmp.closed, true);
  await assert.rejects(qmp.execute("query-status"), /closed/);
  assert.equal(await qmp.nextEvent("STOP"), null);
});

test("QMP: a monitor that never greets (busy with another client) is given up after the timeout", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-qmp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "qmp.sock");
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  await assert.rejects(QmpClient.connect(path, 200), /gave no greeting within 200 ms/);
  await assert.rejects(QmpClient.connect(join(dir, "missing.sock"), 200), /ENOENT/);
});
