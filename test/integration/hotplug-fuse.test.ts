/**
 * A container must not be able to wedge hot-plug. lodged runs its helpers (lodge-hotplug, the
 * proxy forwarder) with the instance's lock held, and they resolve paths inside the container,
 * whose root controls its filesystems: /dev/fuse is bound in, so it can mount a FUSE filesystem
 * whose server never answers, and any lookup under it then waits for good. These tests do that
 * for real (test/fixtures/fuse-hang, built here with gcc) and check that the request fails with
 * a timeout, and that the instance is left as it was and can still be changed.
 */
import test from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HOTPLUG_HELPER_TIMEOUT_MS } from "../../src/instances/drivers/lxc/hotplug.js";
import { PROXY_START_TIMEOUT_MS } from "../../src/instances/drivers/lxc/proxy.js";
import { which } from "../../src/sys/exec.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { ROOT, runCommand, TestDaemon } from "../helpers/daemon.js";

const FIXTURE = join(ROOT, "test/fixtures/fuse-hang/fuse-hang.c");
/** What a timed-out request may take beyond the helper's timeout: the kill, the reply. */
const MARGIN_MS = 5_000;

/** A host directory a container's root can read (0777: write too), removed at the end. */
async function hostDir(t: test.TestContext, mode = 0o755): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lodge-fuse-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, mode);
  await writeFile(join(dir, "hello"), "from the host\n");
  return dir;
}

/** The fixture, built static so it runs in a busybox container. */
async function buildFuseHang(t: test.TestContext): Promise<string> {
  // CI has gcc; without it this test must fail, not pass unseen.
  assert.ok(await which("gcc"), "gcc (and libc6-dev) are needed to build the FUSE fixture");
  const dir = await hostDir(t);
  const bin = join(dir, "fuse-hang");
  await runCommand("gcc", ["-static", "-O2", "-Wall", "-o", bin, FIXTURE]);
  return bin;
}

interface Hung {
  d: TestDaemon;
  name: string;
  /** The container's init, as the host sees it. */
  init: number;
  sh(cmd: string): Promise<{ code: number; stdout: string; stderr: string }>;
}

/**
 * A running busybox container with a FUSE filesystem that never answers on /mnt/hang. The
 * server is killed and the mount detached at the end (the container is deleted too), also when
 * the test fails.
 */
async function hungContainer(t: test.TestContext): Promise<Hung> {
  const bin = await buildFuseHang(t);
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const name = "c1";
  await d.lxc(["init", "bb", name]);
  t.after(() => d.lxc(["delete", "--force", name], { allowFail: true }));
  // Every container gets the host's /dev/fuse bound in, usable where the host has it 0666
  // (udev's rule); where it is devtmpfs's 0600 (no udev, as on the development machine), root
  // inside maps to no host id that may open it (EACCES). A unix-char device grants it, as LXD
  // users do for FUSE; either way the kernel lets the container's root mount FUSE in its own
  // user namespace.
  await d.lxc(["config", "device", "add", name, "fuse", "unix-char", "source=/dev/fuse", "path=/dev/fuse"]);
  await d.lxc(["start", name]);
  const sh = (cmd: string) => d.lxc(["exec", name, "--", "sh", "-c", cmd], { allowFail: true, timeoutMs: 30_000 });
  await d.lxc(["file", "push", bin, `${name}/root/fuse-hang`, "--mode", "0755"]);
  // In the background, its output in a file, so the exec returns while it keeps the mount.
  const started = await sh("mkdir -p /mnt/hang && { /root/fuse-hang /mnt/hang >/tmp/fuse-hang.log 2>&1 & echo $!; }");
  const server = started.stdout.trim();
  assert.match(server, /^\d+$/, `fuse-hang started: ${started.stderr}`);
  t.after(async () => {
    // Killing the server aborts the connection (lookups then fail at once); the mount goes next.
    await sh(`kill -9 ${server}; umount -l /mnt/hang`);
  });
  // The mount is there once the fixture says so (it exits with the kernel's reason otherwise).
  let log = "";
  for (let i = 0; i < 100 && !log; i++) {
    log = (await sh("cat /tmp/fuse-hang.log")).stdout;
    if (!log) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(log, "mounted\n", "fuse-hang mounted a FUSE filesystem inside the container");
  // Read from the mount table, never by touching /mnt/hang, which would block this exec too.
  assert.equal((await sh("grep ' /mnt/hang ' /proc/self/mountinfo | grep -c ' - fuse '")).stdout.trim(), "1");
  const init = JSON.parse((await d.lxc(["query", `/1.0/instances/${name}/state`])).stdout).pid as number;
  return { d, name, init, sh };
}

/** A PATCH of the instance's devices; fails the test (not hangs it) past the bound. */
async function patchDevices(h: Hung, devices: Record<string, Record<string, string>>, boundMs: number) {
  const started = Date.now();
  const r = await h.d.client.raw<unknown>("PATCH", `/1.0/instances/${h.name}`, { devices }, { signal: AbortSignal.timeout(boundMs + 30_000) }).catch((e: Error) => {
    throw new Error(`the hot-plug request did not return in ${boundMs + 30_000} ms (wedged): ${e.message}`);
  });
  return { r, ms: Date.now() - started };
}

/** lodged's helpers still running for this container (their command line names its init). */
async function helpersLeft(h: Hung, program: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (argv[0]?.endsWith(program) && argv.includes(String(h.init))) out.push(`${entry}: ${argv.join(" ")}`);
  }
  return out;
}

/** What a request that failed has left: the instance runs as before and can still be changed. */
async function assertUnharmed(t: test.TestContext, h: Hung, device: string, before: string[]) {
  const inst = await h.d.client.get<{ devices: Record<string, unknown>; status: string }>(`/1.0/instances/${h.name}`);
  assert.equal(inst.devices[device], undefined, "the failed device is not in the instance's config");
  assert.equal(inst.status, "Running");
  const state = JSON.parse((await h.d.lxc(["query", `/1.0/instances/${h.name}/state`])).stdout) as { pid: number };
  assert.equal(state.pid, h.init, "never restarted");
  assert.deepEqual(await h.sh("echo alive"), { code: 0, stdout: "alive\n", stderr: "" }, "exec works");
  // The lock is free: a normal hot-plug goes through, and works.
  const share = await hostDir(t);
  await h.d.lxc(["config", "device", "add", h.name, "ok", "disk", `source=${share}`, "path=/mnt/ok"], { timeoutMs: 30_000 });
  assert.equal((await h.sh("cat /mnt/ok/hello")).stdout, "from the host\n");
  assert.deepEqual((await h.d.lxc(["config", "device", "list", h.name])).stdout.split("\n").filter(Boolean).sort(), [...before, "ok"].sort());
}

test("a disk hot-plugged under a FUSE mount that never answers: a timeout error, the instance as it was", async (t) => {
  const h = await hungContainer(t);
  const source = await hostDir(t);
  // A writable disk already there, changed (to read-only) in the same request: it is unmounted
  // and mounted again before or after the hung one, so the revert has real work to undo.
  const pre = { type: "disk", source: await hostDir(t, 0o777), path: "/mnt/pre" };
  await h.d.lxc(["config", "device", "add", h.name, "pre", "disk", `source=${pre.source}`, `path=${pre.path}`]);
  const changed = { pre: { ...pre, readonly: "true" }, hang: { type: "disk", source, path: "/mnt/hang/x" } };
  const { r, ms } = await patchDevices(h, changed, HOTPLUG_HELPER_TIMEOUT_MS + MARGIN_MS);
  assert.equal(r.status, 400, JSON.stringify(r.body));
  const error = (r.body as { error?: string }).error ?? "";
  t.diagnostic(`answered in ${ms} ms: ${error}`);
  assert.match(error, /\/mnt\/hang\/x: the hot-plug timed out after 10 seconds/);
  assert.match(error, /a filesystem inside the container may not be answering/);
  // At least the timeout: the helper really was stuck in the FUSE mount, and was ended by it.
  assert.ok(ms >= HOTPLUG_HELPER_TIMEOUT_MS, `answered in ${ms} ms, before the helper's timeout: it was not blocked`);
  assert.ok(ms < HOTPLUG_HELPER_TIMEOUT_MS + MARGIN_MS, `answered in ${ms} ms`);
  assert.deepEqual(await helpersLeft(h, "lodge-hotplug"), [], "no lodge-hotplug left");
  assert.equal((await h.sh("grep -c ' /mnt/hang/x ' /proc/self/mountinfo")).stdout.trim(), "0", "nothing mounted");
  const kept = await h.d.client.get<{ devices: Record<string, Record<string, string>> }>(`/1.0/instances/${h.name}`);
  assert.deepEqual(kept.devices.pre, pre, "the changed device keeps its config");
  assert.equal((await h.sh("grep -c ' /mnt/pre ' /proc/self/mountinfo")).stdout.trim(), "1", "mounted once, as before");
  assert.deepEqual(await h.sh("touch /mnt/pre/new && cat /mnt/pre/hello"), { code: 0, stdout: "from the host\n", stderr: "" }, "still writable");
  await assertUnharmed(t, h, "hang", ["fuse", "pre"]);
});

test("a proxy listening on a socket under a FUSE mount that never answers: a timeout error, nothing left running", async (t) => {
  const h = await hungContainer(t);
  const device = { type: "proxy", bind: "instance", listen: "unix:/mnt/hang/app.sock", connect: "tcp:127.0.0.1:9" };
  const { r, ms } = await patchDevices(h, { app: device }, PROXY_START_TIMEOUT_MS + MARGIN_MS);
  assert.equal(r.status, 400, JSON.stringify(r.body));
  const error = (r.body as { error?: string }).error ?? "";
  t.diagnostic(`answered in ${ms} ms: ${error}`);
  assert.match(error, /proxy device "app": the forwarder did not start within 10 seconds/);
  assert.match(error, /a filesystem inside the container may not be answering/);
  assert.ok(ms >= PROXY_START_TIMEOUT_MS, `answered in ${ms} ms, before the forwarder's timeout: it was not blocked`);
  assert.ok(ms < PROXY_START_TIMEOUT_MS + MARGIN_MS, `answered in ${ms} ms`);
  // The starting command, the forwarder it forked and the forwarder's helper in the container.
  assert.deepEqual(await helpersLeft(h, "lodge-proxy"), [], "no lodge-proxy left");
  assert.deepEqual(await readdir(join(h.d.dir, "containers", h.name)).then((f) => f.filter((x) => x.startsWith("proxy.") && x.endsWith(".pid"))), [], "no pidfile");
  await assertUnharmed(t, h, "app", ["fuse"]);
});
