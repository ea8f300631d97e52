/**
 * The Debian VM image built locally (debootstrap, minutes) and booted by plain QEMU under TCG:
 * Lodge's agent answers (started by the loader's systemd unit from the config drive), the
 * serial console reaches a login prompt, qemu-guest-agent answers through the qga client
 * (non-interactive, and it refuses a pty saying why), and the power button powers off.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { buildImage, loadDefinition } from "../../src/images/builder/index.js";
import { connectAgent } from "../../src/instances/drivers/qemu/agent-client.js";
import { connectQga, PtyNotSupportedError } from "../../src/instances/drivers/qemu/qga-client.js";
import { bootVm, rssBytes, tempDir, unpackVmImage, waitForLog } from "../helpers/vm.js";

const ROOT = path.resolve(import.meta.dirname, "../..");

test("Debian VM: agent, login prompt on the console, qga fallback, ACPI power-off", { timeout: 900_000 }, async (t) => {
  const out = await tempDir(t, "lodge-vmtest-");
  const built = await buildImage(await loadDefinition(path.join(ROOT, "images/debian-vm.yaml")), { outDir: out, format: "split", compression: "gzip" });
  const img = await unpackVmImage(t, built.files[0]!, built.files[1]!);
  const vm = await bootVm(t, img, { memoryMiB: 1024 });

  const agent = await connectAgent(vm.agentSocket);
  t.after(() => agent.close());
  const info = await agent.ready(90_000);
  t.diagnostic(`boot → Lodge agent ready: ${((performance.now() - vm.startedAt) / 1000).toFixed(1)} s (TCG, 1 vCPU, 1 GiB)`);
  assert.deepEqual([info.agent, info.os, info.osVersion, info.hostname], ["lodge", "Debian GNU/Linux", "12", "debian"]);
  assert.match(info.kernelVersion, /-cloud-amd64$/);
  const r = await agent.exec({ command: ["sh", "-c", "cat /proc/1/comm; systemctl is-active lodge-agent.service"] });
  let o = "";
  r.stdout.on("data", (d) => (o += d));
  r.stderr!.resume();
  assert.equal((await r.exited).code, 0);
  assert.equal(o, "systemd\nactive\n");

  const login = await waitForLog(vm.consoleLog, /login: *$/m, 120_000);
  t.diagnostic(`boot → login: on ttyS0: ${((login - vm.startedAt) / 1000).toFixed(1)} s`);

  const qga = await connectQga(vm.qgaSocket);
  t.after(() => qga.close());
  const q = await qga.ready(60_000);
  assert.equal(q.agent, "qemu-ga");
  assert.equal(q.kernelVersion, info.kernelVersion);
  const u = await qga.exec({ command: ["sh", "-c", "uname -r; echo err >&2; exit 2"] });
  let uo = "";
  let ue = "";
  u.stdout.on("data", (d) => (uo += d));
  u.stderr!.on("data", (d) => (ue += d));
  assert.deepEqual(await u.exited, { code: 2 });
  assert.deepEqual([uo, ue], [`${info.kernelVersion}\n`, "err\n"]);
  await assert.rejects(qga.exec({ command: ["sh"], pty: { cols: 80, rows: 24 } }), (e: Error) => e instanceof PtyNotSupportedError && /needs Lodge's agent/.test(e.message));
  const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
  await qga.write("/root/qga-file", data, { mode: 0o640, uid: 1, gid: 2 });
  const st = await qga.stat("/root/qga-file");
  assert.deepEqual([st.type, st.mode, st.uid, st.gid, st.size], ["file", 0o640, 1, 2, data.length]);
  assert.ok(Buffer.concat(await (await qga.read("/root/qga-file")).toArray()).equals(data));
  await qga.delete("/root/qga-file");
  await assert.rejects(qga.stat("/root/qga-file"), (e: any) => e.status === 404);
  const s = await qga.state();
  assert.ok(s.network.lo && s.network.eth0, Object.keys(s.network).join());
  assert.ok(s.memory.total > 900 * 2 ** 20);
  t.diagnostic(`QEMU RSS, idle Debian VM with 1 GiB guest RAM: ${((await rssBytes(vm.pid)) / 2 ** 20).toFixed(0)} MiB`);

  const t0 = performance.now();
  await vm.qmp("system_powerdown");
  const end = await Promise.race([vm.exited, new Promise((r) => setTimeout(() => r("timeout"), 60_000))]);
  assert.deepEqual(end, { code: 0, signal: null }, "QEMU exits after the power button");
  t.diagnostic(`system_powerdown → QEMU exited: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});
