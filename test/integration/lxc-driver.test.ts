/**
 * The liblxc container driver against the real liblxc: unprivileged busybox containers in a
 * private lxcpath, each test with its own container and rootfs copy, removed in t.after
 * whether the test passes or not (processes, cgroups, directories).
 */
import test from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { LxcDriver } from "../../src/instances/drivers/lxc/driver.js";
import { allocateIdmap } from "../../src/sys/idmap.js";
import { Cgroup } from "../../src/sys/cgroup.js";
import { base, container, execFileP, image, leftovers, lxcpath, pool, sh, sharedMap, type Made } from "../helpers/driver-container.js";

test("an unprivileged container: uid 0 inside is a non-zero host uid, and root owns its files", async (t) => {
  const c = await container(t);
  const uidMap = (await sh(c, "cat /proc/self/uid_map")).stdout.trim().split(/\s+/).map(Number);
  assert.equal(uidMap[0], 0);
  assert.ok(uidMap[1]! > 0, `uid 0 maps to host uid ${uidMap[1]}`);
  assert.equal(uidMap[1], sharedMap[0]!.hostid);
  assert.equal((await sh(c, "id -u; stat -c %u:%g /bin/busybox /etc/passwd")).stdout, "0\n0:0\n0:0\n");
  const st = await c.driver.state(c.name);
  const status = await readFile(`/proc/${st.pid}/status`, "utf8");
  assert.match(status, new RegExp(`^Uid:\\s+${sharedMap[0]!.hostid}\\s`, "m"), "init runs as the mapped host uid");
});

test("exec: stdout and stderr apart, exit codes, environment, cwd, user and stdin", async (t) => {
  const c = await container(t);
  assert.deepEqual(await sh(c, "echo hi"), { code: 0, stdout: "hi\n", stderr: "" });
  assert.deepEqual(await sh(c, "echo out; echo err >&2; exit 3"), { code: 3, stdout: "out\n", stderr: "err\n" });
  const env = await sh(c, 'echo "$GREETING" "${HOME:-unset}"', { env: { PATH: "/bin", GREETING: "hello world" } });
  assert.equal(env.stdout, "hello world unset\n", "only the given environment reaches the command");
  assert.equal((await sh(c, "pwd", { cwd: "/tmp" })).stdout, "/tmp\n");
  assert.equal((await sh(c, "pwd")).stdout, "/\n");
  assert.equal((await sh(c, "id -u; id -g", { uid: 1000, gid: 1001 })).stdout, "1000\n1001\n");
  assert.equal((await sh(c, "tr a-z A-Z", {}, "shout\n")).stdout, "SHOUT\n");
  const missing = await c.driver.exec(c.name, { command: ["/no/such/program"] });
  missing.stdin.end();
  missing.stdout.resume();
  missing.stderr?.resume();
  assert.equal((await missing.exited).code, 127);
});

test("exec on a pty: a terminal of the asked size inside", async (t) => {
  const c = await container(t);
  const p = await c.driver.exec(c.name, { command: ["/bin/sh", "-c", "tty; stty size"], env: { PATH: "/bin", TERM: "xterm" }, pty: { cols: 100, rows: 30 } });
  assert.equal(p.stderr, null);
  const out: Buffer[] = [];
  p.stdout.on("data", (b: Buffer) => out.push(b));
  assert.equal((await p.exited).code, 0);
  const text = Buffer.concat(out).toString();
  assert.match(text, /\/dev\/pts\/\d+/);
  assert.match(text, /30 100/);
});

test("a 64 MiB memory limit kills a 200 MiB allocation, and the state shows the memory", async (t) => {
  const c = await container(t, { run: { limits: { memory: { bytes: 64 * 1024 * 1024, swap: false } } } });
  // busybox tail keeps its whole input when it holds no newline: a real 200 MiB heap.
  const big = await sh(c, "head -c 200m /dev/zero | tail >/dev/null; echo $?");
  assert.equal(big.stdout.trim(), "137", `tail was killed by the OOM killer: ${big.stderr}`);
  const small = await sh(c, "head -c 16m /dev/zero | tail | wc -c");
  assert.equal(small.stdout.trim(), String(16 * 1024 * 1024), "a 16 MiB allocation fits");
  const st = await c.driver.state(c.name);
  assert.ok(st.memory.usage > 0 && st.memory.usage <= 64 * 1024 * 1024, `usage ${st.memory.usage}`);
  assert.ok(st.memory.usage_peak >= 60 * 1024 * 1024, `peak ${st.memory.usage_peak} reached the limit`);
});

test("state: Running with pid, processes, cpu and memory; freeze and unfreeze", async (t) => {
  const c = await container(t);
  const st = await c.driver.state(c.name);
  assert.equal(st.status, "Running");
  assert.ok(st.pid > 1);
  assert.match(await readFile(`/proc/${st.pid}/status`, "utf8"), /^NSpid:\s+\d+\s+1$/m, "pid is the container's init");
  assert.ok(st.processes >= 1);
  assert.ok(st.memory.usage > 0);
  assert.ok(st.cpu.usage_ns > 0);
  assert.ok(st.network.lo, "the container's own loopback counters");

  await c.driver.freeze(c.name);
  assert.equal((await c.driver.state(c.name)).status, "Frozen");
  assert.match(await readFile(`/proc/${st.pid}/status`, "utf8"), /^State:\s+[SD]/m);
  await c.driver.unfreeze(c.name);
  assert.equal((await c.driver.state(c.name)).status, "Running");
  assert.equal((await sh(c, "echo thawed")).stdout, "thawed\n");
});

test("live limits: memory and processes change on a running container", async (t) => {
  const c = await container(t);
  // Unlimited first: the fork check below can start all its sleepers, so its count is real.
  assert.equal(await forkSleepers(c, 30), 30, "30 sleepers start with no pids limit");
  await c.driver.applyLimits(c.name, { memory: { bytes: 48 * 1024 * 1024, swap: false }, processes: 20 });
  const cg = await Cgroup.ofPid((await c.driver.state(c.name)).pid);
  const mem = cg.dir("memory");
  assert.ok(mem, "the host has a memory controller");
  assert.equal(await readUp(mem.dir, mem.version === 1 ? "memory.limit_in_bytes" : "memory.max"), String(48 * 1024 * 1024));
  const pids = cg.dir("pids");
  assert.ok(pids, "the host has a pids controller");
  // The limit sits on the payload cgroup; init may be in a child of it, so read up to it.
  assert.equal(await readUp(pids.dir, "pids.max"), "20");
  const started = await forkSleepers(c, 30);
  assert.ok(started < 20, `pids.max held: ${started} of 30 sleepers started under a limit of 20 tasks`);

  await c.driver.applyLimits(c.name, {});
  assert.equal(await readUp(pids.dir, "pids.max"), "max", "the limit is lifted live");
  assert.equal(await forkSleepers(c, 30), 30, "30 sleepers start again once the limit is gone");
});

/** Starts n background sleepers in the container, counts how many started, and kills them. */
async function forkSleepers(c: Made, n: number): Promise<number> {
  // A job whose fork failed leaves $! as it was, so only started sleepers are counted.
  const r = await sh(c, `pids=""; last=""; i=0; while [ $i -lt ${n} ]; do sleep 1000 </dev/null >/dev/null 2>&1 & if [ "$!" != "$last" ]; then last=$!; pids="$pids $!"; fi; i=$((i+1)); done 2>/dev/null; set -- $pids; echo $#; kill $pids 2>/dev/null; wait 2>/dev/null; true`);
  return Number(r.stdout.trim());
}

/**
 * A limit file read in the cgroup or its nearest ancestor (up to lxc.payload.NAME) that holds
 * a limit: init may sit in a child of the cgroup the limit is written to.
 */
async function readUp(dir: string, file: string): Promise<string> {
  const unlimited = (v: string) => v === "max" || v === "9223372036854771712"; // v2, v1 memory
  let value = "max";
  for (let d = dir; d.includes("lxc.payload."); d = dirname(d)) {
    value = (await readFile(join(d, file), "utf8")).trim();
    if (!unlimited(value)) return value;
  }
  return value;
}

test("clean stop, start again, and a fresh driver (as after a daemon restart) re-attaches", async (t) => {
  const c = await container(t);
  const first = await c.driver.state(c.name);
  await c.driver.stop(c.name, { timeoutMs: 10_000 });
  assert.equal((await c.driver.state(c.name)).status, "Stopped");
  assert.match(await readFile(c.driver.consoleLogPath(c.name), "utf8"), /system halt|going down/, "init shut down cleanly");
  assert.deepEqual((await leftovers(c.name)).filter((l) => !l.startsWith("dir ")), [], "no process or cgroup after stop");

  const again = await c.driver.start(c.spec);
  assert.notEqual(again.pid, first.pid);
  const fresh = new LxcDriver({ lxcpath });
  const st = await fresh.state(c.name);
  assert.equal(st.status, "Running");
  assert.equal(st.pid, again.pid);
  const p = await fresh.exec(c.name, { command: ["/bin/echo", "still here"], env: { PATH: "/bin" } });
  let out = "";
  p.stdout.on("data", (b: Buffer) => (out += b));
  p.stdin.end();
  assert.equal((await p.exited).code, 0);
  assert.equal(out, "still here\n");
  await fresh.stop(c.name, { force: true });
  assert.equal((await c.driver.state(c.name)).status, "Stopped");
});

test("kill -9 of the container's init: the state says Stopped and nothing is left running", async (t) => {
  const c = await container(t);
  const { pid } = await c.driver.state(c.name);
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 10_000;
  while ((await c.driver.state(c.name)).status !== "Stopped") {
    assert.ok(Date.now() < deadline, "state still says running 10 s after init died");
    await new Promise((r) => setTimeout(r, 20));
  }
  await c.driver.stop(c.name); // waits for the monitor's clean-up
  assert.deepEqual((await leftovers(c.name)).filter((l) => !l.startsWith("dir ")), []);
});

test("delete cleans everything: no directory, no process, no cgroup", async (t) => {
  const c = await container(t);
  // leftovers() must see the container's cgroups on this host's layout, or "none left" proves nothing.
  const cg = await Cgroup.ofPid((await c.driver.state(c.name)).pid);
  const found = (await leftovers(c.name)).filter((l) => l.startsWith("cgroup ")).map((l) => l.slice("cgroup ".length));
  for (const ctl of ["memory", "pids", "cpu", "freezer"] as const) {
    const d = cg.dir(ctl);
    if (d) assert.ok(found.some((f) => d.dir === f || d.dir.startsWith(`${f}/`)), `leftovers sees the ${ctl} cgroup ${d.dir}: ${found.join(", ")}`);
  }
  await assert.rejects(c.driver.delete(c.name), /is running/);
  await c.driver.delete(c.name, { force: true });
  assert.deepEqual(await leftovers(c.name), []);
  assert.equal((await c.driver.state(c.name)).status, "Stopped");
});

test("disk device: a read-only bind mount of a host directory", async (t) => {
  const src = join(base, `share-${process.pid}`);
  await mkdir(src, { recursive: true });
  await writeFile(join(src, "hello.txt"), "from the host\n");
  t.after(() => rm(src, { recursive: true, force: true }));
  const c = await container(t, { run: { mounts: [{ source: src, target: "/mnt/share", readonly: true, shift: true }] } });
  assert.equal((await sh(c, "cat /mnt/share/hello.txt; stat -c %u /mnt/share/hello.txt")).stdout, "from the host\n0\n");
  const write = await sh(c, "echo x > /mnt/share/new.txt");
  assert.notEqual(write.code, 0);
  assert.match(write.stderr, /Read-only file system/);
});

test("shift fallback: the rootfs is re-owned once on disk and works like the idmapped one", async (t) => {
  const c = await container(t, { start: false, driver: { ownership: "shift" } });
  const started = await c.driver.start(c.spec);
  assert.deepEqual(started.rootfsIdmap, sharedMap);
  const hostUid = sharedMap[0]!.hostid;
  assert.equal((await lstat(join(c.spec.rootfs, "etc/passwd"))).uid, hostUid, "shifted on disk");
  assert.equal((await lstat(join(c.spec.rootfs, "bin/sh"))).uid, hostUid, "symlinks re-owned, not followed");
  assert.equal((await sh(c, "id -u; stat -c %u /etc/passwd; touch /root/x && echo ok")).stdout, "0\n0\nok\n");

  // A privileged start puts the image's own ids back.
  await c.driver.stop(c.name, { force: true });
  const priv = await c.driver.start({ ...c.spec, privileged: true, idmap: undefined, rootfsIdmap: started.rootfsIdmap });
  assert.equal(priv.rootfsIdmap, null);
  assert.equal((await lstat(join(c.spec.rootfs, "etc/passwd"))).uid, 0);
  assert.equal((await sh(c, "cat /proc/self/uid_map")).stdout.trim().split(/\s+/).join(" "), "0 0 4294967295");
});

test("an isolated map: its own 65536 ids past the shared map's first range", async (t) => {
  const iso = allocateIdmap(pool, { isolated: true }, []);
  const c = await container(t, { idmap: iso.entries });
  const uidMap = (await sh(c, "cat /proc/self/uid_map")).stdout.trim().split(/\s+/).map(Number);
  assert.deepEqual(uidMap, [0, iso.base, 65536]);
});

test("a start that fails says why and leaves nothing running", async (t) => {
  const c = await container(t, { start: false });
  await assert.rejects(c.driver.start({ ...c.spec, rootfs: join(base, "no-such-rootfs") }), /failed to start: rootfs .* is not a directory/);
  const hidden = await mkdtemp(join(tmpdir(), "lodge-hidden-")); // mode 0700
  t.after(() => rm(hidden, { recursive: true, force: true }));
  // The rootfs's own parent is the instance's door, which the driver opens to the container's
  // root itself (host-checks.ts openDoor): the closed directory is the one above it.
  await mkdir(join(hidden, "volume"));
  await execFileP("cp", ["-a", image, join(hidden, "volume", "rootfs")]);
  await assert.rejects(c.driver.start({ ...c.spec, rootfs: join(hidden, "volume", "rootfs") }), /must be searchable by others/);
  // liblxc's own refusal, reported from its log: once with a bad key, once after its cgroups exist.
  // The cause comes first, without liblxc's generic follow-ups.
  await assert.rejects(c.driver.start({ ...c.spec, rawLxc: "lxc.cap.drop = no_such_capability" }), /failed to start: Invalid argument - Invalid capability specified/);
  await assert.rejects(c.driver.start({ ...c.spec, rawLxc: "lxc.init.cmd = /no/such/init" }), (e: Error) => {
    assert.match(e.message, /failed to start: No such file or directory - Failed to exec "\/no\/such\/init"/);
    assert.doesNotMatch(e.message, /another process|ABORTING|Failed to spawn/);
    return true;
  });
  assert.equal((await c.driver.state(c.name)).status, "Stopped");
  assert.deepEqual((await leftovers(c.name)).filter((l) => !l.startsWith("dir ")), []);
});
