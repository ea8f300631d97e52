import test from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../helpers/eventually.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { tinyVmImage } from "../helpers/vm-image.js";

// Virtual machines through the real `lxc` client (5.0.2), under TCG on this machine: the tiny
// VM image (Debian's cloud kernel, a busybox root disk, Lodge's agent from the config drive).

const KERNEL = /^\d+\.\d+\.\d+-\d+-cloud-amd64$/;

async function state(d: TestDaemon, name: string): Promise<{ status: string; pid: number }> {
  return JSON.parse((await d.lxc(["query", `/1.0/instances/${name}/state`])).stdout);
}

/** Waits until `lxc exec` answers in the VM (its agent is up), and returns how long it took. */
async function agentReady(d: TestDaemon, name: string, timeoutMs = 120_000): Promise<number> {
  const t0 = Date.now();
  await eventually(async () => ((await d.lxc(["exec", name, "--", "true"], { allowFail: true })).code === 0 ? true : undefined), `the agent of ${name}`, timeoutMs, 500);
  return Date.now() - t0;
}

/** A live process (a zombie is not: a daemonized QEMU's parent may reap it a moment later). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

test("a VM: launch, exec and a pty, files, console, stop and start, snapshot and restore, kill, lodged restart, delete", { timeout: 900_000 }, async (t) => {
  const d = await TestDaemon.start(t);
  const img = await tinyVmImage();
  await d.lxc(["image", "import", img.metadata, img.rootfs, "--alias", "tiny"]);
  const shown = JSON.parse((await d.lxc(["query", "/1.0/images/aliases/tiny"])).stdout);
  assert.equal(shown.type, "virtual-machine");
  // A VM image makes no container (lxc itself asks for a VM when the alias is a VM image's).
  const body = JSON.stringify({ name: "c1", type: "container", source: { type: "image", alias: "tiny" } });
  const wrong = await d.lxc(["query", "-X", "POST", "-d", body, "/1.0/instances"], { allowFail: true });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /type "virtual-machine" doesn't match instance type "container"/);

  await d.lxc(["launch", "tiny", "v1", "--vm", "-c", "limits.memory=384MiB"]);
  const v1 = JSON.parse((await d.lxc(["query", "/1.0/instances/v1"])).stdout);
  assert.equal(v1.type, "virtual-machine");
  t.diagnostic(`launch → agent answering: ${await agentReady(d, "v1")} ms`);

  // exec: the guest's own kernel, exit codes and separate streams.
  const uname = await d.lxc(["exec", "v1", "--", "uname", "-r"]);
  assert.match(uname.stdout.trim(), KERNEL);
  assert.notEqual(uname.stdout.trim(), (await runCommand("uname", ["-r"])).stdout.trim(), "not the host's kernel");
  const streams = await d.lxc(["exec", "v1", "--", "sh", "-c", "echo out; echo err >&2; exit 7"], { allowFail: true });
  assert.deepEqual([streams.code, streams.stdout, streams.stderr], [7, "out\n", "err\n"]);
  // An interactive shell through a pty.
  const pty = await runCommand("script", ["-qec", "lxc exec v1 -- sh", "/dev/null"], {
    input: "tty; echo answer-$((6*7))\nexit\n",
    env: { LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") },
  });
  assert.match(pty.stdout, /\/dev\/pts\/\d+/);
  assert.match(pty.stdout, /answer-42/);

  // A binary file and its mode, pushed and pulled back.
  const dir = await mkdtemp(join(tmpdir(), "lodge-vmfiles-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const blob = randomBytes(1024 * 1024);
  await writeFile(join(dir, "blob"), blob, { mode: 0o750 });
  await d.lxc(["file", "push", join(dir, "blob"), "v1/root/blob", "--mode", "0750"]);
  assert.equal((await d.lxc(["exec", "v1", "--", "stat", "-c", "%a %s", "/root/blob"])).stdout.trim(), `750 ${blob.length}`);
  await d.lxc(["file", "pull", "v1/root/blob", join(dir, "back")]);
  assert.ok(blob.equals(await readFile(join(dir, "back"))), "the same bytes back");

  // The serial console's log shows the guest booting.
  const log = await d.lxc(["console", "v1", "--show-log"]);
  assert.match(log.stdout, /BusyBox v\d/, "the guest's shell on its serial console");

  // A graceful stop (ACPI), then a start: the disk keeps the file.
  await d.lxc(["stop", "v1"]);
  assert.equal((await state(d, "v1")).status, "Stopped");
  await d.lxc(["start", "v1"]);
  await agentReady(d, "v1");
  assert.equal((await d.lxc(["exec", "v1", "--", "stat", "-c", "%s", "/root/blob"])).stdout.trim(), String(blob.length));

  // Snapshot, a change, restore: the change is gone.
  await d.lxc(["snapshot", "v1", "s0"]);
  await d.lxc(["exec", "v1", "--", "rm", "/root/blob"]);
  await d.lxc(["stop", "-f", "v1"]);
  await d.lxc(["restore", "v1", "s0"]);
  await d.lxc(["start", "v1"]);
  await agentReady(d, "v1");
  assert.equal((await d.lxc(["exec", "v1", "--", "stat", "-c", "%s", "/root/blob"])).stdout.trim(), String(blob.length));

  // QEMU killed: the VM is reported Stopped.
  const killed = (await state(d, "v1")).pid;
  assert.ok(killed > 0);
  process.kill(killed, "SIGKILL");
  await eventually(async () => ((await state(d, "v1")).status === "Stopped" ? true : undefined), "v1 reported stopped", 20_000);

  // lodged killed: the VM runs on, and a new lodged manages it.
  await d.lxc(["start", "v1"]);
  await agentReady(d, "v1");
  const qemu = (await state(d, "v1")).pid;
  await d.kill9();
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(alive(qemu), "QEMU outlives lodged");
  await d.launch();
  assert.equal((await state(d, "v1")).status, "Running");
  assert.equal((await d.lxc(["exec", "v1", "--", "echo", "back"])).stdout, "back\n");

  // Delete: no process, no socket, no volume left.
  await d.lxc(["delete", "-f", "v1"]);
  await eventually(async () => (alive(qemu) ? undefined : true), "QEMU gone", 20_000);
  assert.deepEqual(await readdir(join(d.dir, "virtual-machines")).catch(() => []), []);
  assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/virtual-machines")), []);
  assert.ok(!(await stat(join(d.dir, "storage-pools/default/virtual-machines-snapshots/v1")).catch(() => undefined)), "its snapshots went with it");
});
