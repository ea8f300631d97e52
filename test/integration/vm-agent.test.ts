/**
 * Lodge's guest agent in a real VM: the tiny VM image built by the image builder, booted by
 * plain QEMU under TCG (direct kernel boot, a fresh config drive, the agent's chardev socket),
 * then driven through connectAgent() as lodged will. Needs `npm run build` (dist/lodge-agent)
 * and the cloud kernel .deb cached by scripts/setup.sh. Timings are reported, not asserted.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { Readable } from "node:stream";
import { buildImage, loadDefinition } from "../../src/images/builder/index.js";
import { inspectImage } from "../../src/images/inspect.js";
import { connectAgent } from "../../src/instances/drivers/qemu/agent-client.js";
import type { GuestAgent } from "../../src/instances/drivers/qemu/agent-api.js";
import type { ExecProcess, ExecRequest } from "../../src/instances/driver.js";
import { agentBinaryPath, bootVm, rssBytes, tempDir, unpackVmImage } from "../helpers/vm.js";

const ROOT = path.resolve(import.meta.dirname, "../..");

async function collect(s: Readable | null): Promise<string> {
  if (!s) return "";
  let out = "";
  for await (const c of s) out += c;
  return out;
}

async function execAll(a: GuestAgent, req: ExecRequest): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = await a.exec(req);
  p.stdin.end();
  const [stdout, stderr, { code }] = await Promise.all([collect(p.stdout), collect(p.stderr), p.exited]);
  return { code, stdout, stderr };
}

/** Reads a pty's output until it matches re. */
function until(p: ExecProcess, re: RegExp, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no ${re} on the pty within ${ms} ms; got ${JSON.stringify(seen)}`)), ms);
    const on = (d: Buffer) => {
      seen += d.toString();
      if (re.test(seen)) {
        clearTimeout(timer);
        p.stdout.off("data", on);
        resolve(seen);
      }
    };
    p.stdout.on("data", on);
  });
}

test("tiny VM: boots to an answering agent; exec, pty, signals, files, state, reconnect, ACPI power-off", { timeout: 240_000 }, async (t) => {
  assert.ok(existsSync(agentBinaryPath()), `${agentBinaryPath()} is missing: run npm run build`);
  const out = await tempDir(t, "lodge-vmtest-");
  const built = await buildImage(await loadDefinition(path.join(ROOT, "images/tiny-vm.yaml")), { outDir: out, format: "split", compression: "gzip" });
  const [meta, rootfs] = built.files as [string, string];
  assert.match(rootfs, /\.rootfs\.img$/);
  const inspected = await inspectImage({ metadata: meta, rootfs });
  assert.equal(inspected.type, "virtual-machine", "Lodge's image store takes it as a VM image");
  assert.equal(inspected.rootfsFormat?.kind, "qcow2");
  const img = await unpackVmImage(t, meta, rootfs);
  assert.equal(img.properties.type, "virtual-machine");
  const kernelVersion = /^linux-image-(.+)_[^_]+_amd64\.deb$/.exec(path.basename((await import("../../src/images/builder/vm-boot.js").then((m) => m.cloudKernelDeb()))))?.[1];
  assert.ok(kernelVersion, "the cached kernel .deb names its version");

  const vm = await bootVm(t, img, { memoryMiB: 384 });
  let agent: GuestAgent | undefined;
  t.after(() => agent?.close());

  await t.test("ready() answers with the guest's kernel", async () => {
    agent = await connectAgent(vm.agentSocket);
    const info = await agent.ready(30_000);
    const bootMs = performance.now() - vm.startedAt;
    t.diagnostic(`boot → agent ready: ${(bootMs / 1000).toFixed(2)} s (TCG, 1 vCPU, 384 MiB)`);
    assert.equal(info.agent, "lodge");
    assert.equal(info.kernelVersion, kernelVersion);
    assert.equal(info.os, "BusyBox");
    assert.match(info.osVersion, /^\d+\.\d+/);
    assert.equal(info.hostname, "busybox");
  });
  const a = () => agent!;

  await t.test("exec: exit code and separate streams", async () => {
    const u = await execAll(a(), { command: ["uname", "-r"] });
    assert.deepEqual(u, { code: 0, stdout: `${kernelVersion}\n`, stderr: "" });
    const r = await execAll(a(), { command: ["sh", "-c", "echo out; echo err >&2; echo $HOME $(pwd) $(id -u):$(id -g); exit 3"], env: { HOME: "/root", PATH: "/bin:/sbin" }, cwd: "/etc", uid: 1000, gid: 1001 });
    assert.deepEqual(r, { code: 3, stdout: "out\n/root /etc 1000:1001\n", stderr: "err\n" });
    const missing = await execAll(a(), { command: ["no-such-command"] });
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /cannot run no-such-command/);
  });

  await t.test("exec: stdin is passed through with flow control, many execs at once", async () => {
    const big = randomBytes(3 << 20);
    const p = await a().exec({ command: ["sh", "-c", "cat | md5sum"] });
    p.stdin.end(big);
    const [stdout, { code }] = await Promise.all([collect(p.stdout), p.exited, collect(p.stderr)]);
    const { createHash } = await import("node:crypto");
    assert.equal(code, 0);
    assert.equal(stdout.split(" ")[0], createHash("md5").update(big).digest("hex"));
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => execAll(a(), { command: ["sh", "-c", `sleep 0.$((${i} % 3)); echo $0`, `n${i}`] })));
    assert.deepEqual(many.map((r) => r.stdout), Array.from({ length: 8 }, (_, i) => `n${i}\n`));
  });

  await t.test("exec on a pty: interactive sh, resize", async () => {
    const p = await a().exec({ command: ["sh"], pty: { cols: 80, rows: 24 }, env: { PATH: "/bin:/sbin:/usr/bin", TERM: "xterm" } });
    assert.equal(p.stderr, null);
    p.stdin.write("echo $((6 * 7))\n");
    await until(p, /\r\n42\r\n/);
    p.stdin.write("stty size\n");
    await until(p, /24 80/);
    await p.resize(132, 40);
    p.stdin.write("stty size\n");
    await until(p, /40 132/);
    p.stdin.write("tty; exit 4\n");
    const seen = await until(p, /\/dev\/pts\/\d+/);
    assert.match(seen, /\/dev\/pts\/\d+/);
    assert.deepEqual(await p.exited, { code: 4 });
  });

  await t.test("signals reach the command", async () => {
    const p = await a().exec({ command: ["sleep", "100"] });
    p.stdout.resume();
    p.stderr!.resume();
    p.signal("SIGTERM");
    assert.deepEqual(await p.exited, { code: 128 + 15 });
    const q = await a().exec({ command: ["sh"], pty: { cols: 80, rows: 24 } });
    q.stdout.resume();
    q.stdin.write("sleep 100\n");
    await new Promise((r) => setTimeout(r, 300));
    q.signal("SIGKILL");
    assert.deepEqual(await q.exited, { code: 128 + 9 });
  });

  await t.test("files: 1 MiB binary with mode and owner, stat, mkdir, symlink, delete", async () => {
    const data = randomBytes(1 << 20);
    await a().write("/root/blob", data, { mode: 0o640, uid: 1000, gid: 1001 });
    const st = await a().stat("/root/blob");
    assert.deepEqual({ ...st, mtime: 0 }, { type: "file", special: false, mode: 0o640, uid: 1000, gid: 1001, size: data.length, mtime: 0 });
    const back = Buffer.concat(await (await a().read("root/blob")).toArray());
    assert.ok(back.equals(data), "the file reads back byte for byte");
    await a().write("/root/blob", Buffer.from("tail"), { append: true, mode: 0o600 });
    assert.equal((await a().stat("/root/blob")).size, data.length + 4);
    assert.equal((await a().stat("/root/blob")).mode, 0o640, "an existing file keeps its mode");

    await a().mkdir("/root/d", { mode: 0o700, uid: 1000, gid: 1000 });
    await a().mkdir("/root/d"); // exists: fine
    assert.deepEqual(await a().stat("/root/d").then((s) => [s.type, s.mode, s.uid, s.entries]), ["directory", 0o700, 1000, []]);
    await a().symlink("../blob", "/root/d/link");
    const ln = await a().stat("/root/d/link");
    assert.equal(ln.type, "symlink");
    assert.equal(ln.target, "../blob");
    assert.deepEqual((await a().stat("/root/d")).entries, ["link"]);
    await assert.rejects(a().delete("/root/d"), (e: any) => e.status === 400 && /not empty/i.test(e.message));
    await a().delete("/root/d/link");
    await a().delete("/root/d");
    await a().delete("/root/blob");
    await assert.rejects(a().stat("/root/blob"), (e: any) => e.status === 404);
    await assert.rejects(a().read("/nonexistent"), (e: any) => e.status === 404);
    await assert.rejects(a().write("/nonexistent/x", Buffer.from("x")), (e: any) => e.status === 404);
  });

  await t.test("state: interfaces with addresses, memory, processes", async () => {
    let s = await a().state();
    for (let i = 0; i < 100 && !s.network.eth0?.addresses.some((x) => x.family === "inet"); i++) {
      await new Promise((r) => setTimeout(r, 100)); // udhcpc is still asking QEMU's DHCP
      s = await a().state();
    }
    assert.deepEqual(s.network.lo?.addresses.find((x) => x.family === "inet"), { family: "inet", address: "127.0.0.1", netmask: "8", scope: "local" });
    assert.equal(s.network.lo?.type, "loopback");
    const eth0 = s.network.eth0!;
    assert.ok(eth0, `eth0 in ${Object.keys(s.network)}`);
    assert.deepEqual(eth0.addresses.find((x) => x.family === "inet"), { family: "inet", address: "10.0.2.15", netmask: "24", scope: "global" });
    assert.ok(eth0.addresses.some((x) => x.family === "inet6" && x.scope === "link"));
    assert.match(eth0.hwaddr, /^52:54:00(:[0-9a-f]{2}){3}$/);
    assert.equal(eth0.mtu, 1500);
    assert.equal(eth0.state, "up");
    assert.equal(eth0.type, "broadcast");
    assert.ok(eth0.counters.bytes_received > 0 && eth0.counters.packets_sent > 0);
    assert.ok(s.memory.total > 300 * 2 ** 20 && s.memory.total < 384 * 2 ** 20, `MemTotal ${s.memory.total}`);
    assert.ok(s.memory.usage > 0 && s.memory.usage < s.memory.total);
    assert.ok(s.processes > 5, `${s.processes} processes`);
  });

  await t.test("exec round trip latency, QEMU's memory", async () => {
    const n = 30;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) assert.equal((await execAll(a(), { command: ["true"] })).code, 0);
    t.diagnostic(`exec true round trip: ${((performance.now() - t0) / n).toFixed(1)} ms (mean of ${n})`);
    t.diagnostic(`QEMU RSS, idle tiny VM with 384 MiB guest RAM: ${((await rssBytes(vm.pid)) / 2 ** 20).toFixed(0)} MiB`);
  });

  await t.test("a new connection (lodged restarted) finds the agent again; the old one's exec ends", async () => {
    const long = await a().exec({ command: ["sleep", "100"] });
    long.stdout.resume();
    long.stderr!.resume();
    a().close();
    assert.equal((await long.exited).code, 255, "an exec ends with its connection");
    const t0 = performance.now();
    agent = await connectAgent(vm.agentSocket);
    await agent.ready(10_000);
    t.diagnostic(`reconnect → ready: ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual(await execAll(agent, { command: ["echo", "again"] }), { code: 0, stdout: "again\n", stderr: "" });
    const ps = await execAll(agent, { command: ["sh", "-c", "ps -o comm | grep -c '^sleep$'"] });
    assert.equal(ps.stdout, "0\n", "the old session's command was killed");
    // And once more without closing: a HELLO on a live connection starts a clean session too.
    const third = await connectAgent(vm.agentSocket).catch((e) => e);
    if (!(third instanceof Error)) third.close(); // QEMU serves one client at a time; a second may be refused or wait
    assert.deepEqual(await execAll(agent, { command: ["echo", "still"] }), { code: 0, stdout: "still\n", stderr: "" });
  });

  await t.test("ACPI power button: system_powerdown makes QEMU exit", async () => {
    const t0 = performance.now();
    await vm.qmp("system_powerdown");
    const r = await Promise.race([vm.exited, new Promise((r) => setTimeout(() => r("timeout"), 20_000))]);
    assert.notEqual(r, "timeout", "QEMU still runs 20 s after the power button");
    assert.deepEqual(r, { code: 0, signal: null });
    t.diagnostic(`system_powerdown → QEMU exited: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  });
});
