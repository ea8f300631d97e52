import test from "node:test";
import assert from "node:assert/strict";
import { readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { inProcessDaemon, runCommand, TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { eventually } from "../helpers/eventually.js";
import { DirDriver } from "../../src/storage/drivers/dir.js";
import { SqliteStore } from "../../src/state/sqlite.js";
import { databasePath } from "../../src/api/paths.js";

// Scheduled snapshots, expiry, pool moves and crashes, on a real daemon with real containers.

const ls = (dir: string) => readdir(dir).catch(() => [] as string[]);

test("a scheduled snapshot is taken when due, named by the pattern; expired ones are pruned", async (t) => {
  const { d, lxc } = await inProcessDaemon(t);
  await lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await lxc(["init", "bb", "c1", "-c", "snapshots.schedule=@hourly", "-c", "snapshots.pattern=auto-%d", "-c", "snapshots.expiry=30M"]);
  await lxc(["init", "bb", "idle", "-c", "snapshots.schedule=* * * * *"]);
  const scheduler = d.snapshotScheduler!;

  // Stopped and without snapshots.schedule.stopped: nothing is taken.
  assert.deepEqual(await scheduler.runDue(new Date("2026-12-07T10:00:00Z")), []);
  await lxc(["config", "set", "c1", "snapshots.schedule.stopped", "true"]);
  assert.deepEqual(await scheduler.runDue(new Date("2026-12-07T10:00:10Z")), ["c1/auto-0"]);
  // The same minute does not fire twice; a minute off the schedule not at all.
  assert.deepEqual(await scheduler.runDue(new Date("2026-12-07T10:00:40Z")), []);
  assert.deepEqual(await scheduler.runDue(new Date("2026-12-07T10:05:00Z")), []);
  const snaps = JSON.parse((await lxc(["query", "/1.0/instances/c1/snapshots?recursion=1"])).stdout);
  assert.equal(snaps[0].name, "auto-0");
  const left = (Date.parse(snaps[0].expires_at) - Date.now()) / 60_000;
  assert.ok(left > 29 && left <= 30, `expires in ${left} minutes`);

  // Expiry: a round after expires_at deletes it (data and record).
  await lxc(["snapshot", "c1", "keep", "--no-expiry"]);
  await scheduler.runDue(new Date(Date.now() + 31 * 60_000));
  assert.deepEqual(JSON.parse((await lxc(["query", "/1.0/instances/c1/snapshots"])).stdout), ["/1.0/instances/c1/snapshots/keep"]);
  assert.deepEqual(await ls(join(d.dir, "storage-pools/default/containers-snapshots/c1")), ["keep"]);
  // The "idle" instance was never due while stopped.
  assert.deepEqual(JSON.parse((await lxc(["query", "/1.0/instances/idle/snapshots"])).stdout), []);
});

test("lxc move -s moves a stopped instance and its snapshots to another pool", async (t) => {
  const { d, dir, lxc } = await inProcessDaemon(t);
  const p2 = { name: "p2", driver: "dir", config: { source: join(dir, "p2") }, description: "", status: "Created" };
  await new DirDriver(join(dir, "storage-pools")).createPool(p2);
  await d.store.put("storage-pools/p2", p2);
  await lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await lxc(["launch", "bb", "c1"]);
  await lxc(["exec", "c1", "--", "sh", "-c", "echo kept > /root/f"]);
  await lxc(["snapshot", "c1", "s0"]);
  const running = await lxc(["move", "c1", "-s", "p2"], { allowFail: true });
  assert.notEqual(running.code, 0);
  assert.match(running.stderr, /stopped/);
  await lxc(["stop", "-f", "c1"]);
  await lxc(["move", "c1", "-s", "p2"]);
  const c1 = JSON.parse((await lxc(["query", "/1.0/instances/c1?recursion=1"])).stdout);
  assert.equal(c1.expanded_devices.root.pool, "p2");
  assert.deepEqual(c1.snapshots.map((s: { name: string }) => s.name), ["s0"]);
  assert.deepEqual(await ls(join(dir, "storage-pools/default/containers")), []);
  assert.deepEqual(await ls(join(dir, "storage-pools/default/containers-snapshots")), []);
  assert.deepEqual(await ls(join(dir, "p2/containers")), ["c1"]);
  assert.deepEqual(await ls(join(dir, "p2/containers-snapshots/c1")), ["s0"]);
  await lxc(["start", "c1"]);
  assert.equal((await lxc(["exec", "c1", "--", "cat", "/root/f"])).stdout, "kept\n");
  await lxc(["exec", "c1", "--", "rm", "/root/f"]);
  await lxc(["restore", "c1", "s0"]);
  assert.equal((await lxc(["exec", "c1", "--", "cat", "/root/f"])).stdout, "kept\n");
  // A copy into the other pool, and a move to a pool that does not exist.
  await lxc(["copy", "c1", "c2", "-s", "default"]);
  assert.deepEqual(await ls(join(dir, "storage-pools/default/containers-snapshots/c2")), ["s0"]);
  // --instance-only leaves the snapshots behind (they go with the old volume), and a new name renames.
  await lxc(["move", "c2", "c3", "-s", "p2", "--instance-only"]);
  const c3 = JSON.parse((await lxc(["query", "/1.0/instances/c3?recursion=1"])).stdout);
  assert.equal(c3.expanded_devices.root.pool, "p2");
  assert.deepEqual(c3.snapshots, []);
  assert.deepEqual(await ls(join(dir, "storage-pools/default/containers-snapshots")), []);
  assert.deepEqual((await ls(join(dir, "p2/containers"))).sort(), ["c1", "c3"]);
  assert.deepEqual(await ls(join(dir, "p2/containers-snapshots")), ["c1"]);
  await lxc(["stop", "-f", "c1"]);
  const nowhere = await lxc(["move", "c1", "-s", "nowhere"], { allowFail: true });
  assert.match(nowhere.stderr, /nowhere/);
});

/** No copy of the killed daemon still runs (it would write behind the clean-up at start). */
async function assertNoOrphanCopies(d: TestDaemon) {
  const ps = (await runCommand("ps", ["-eo", "args"])).stdout.split("\n");
  assert.deepEqual(ps.filter((l) => /^(cp|rsync) /.test(l) && l.includes(d.dir)), []);
}

/** A container whose rootfs holds enough data that copying it takes a while. */
async function bigContainer(d: TestDaemon, name: string) {
  await d.lxc(["init", "bb", name]);
  const rootfs = join(d.dir, "storage-pools/default/containers", name, "rootfs");
  for (let i = 0; i < 6; i++) await runCommand("dd", ["if=/dev/urandom", `of=${join(rootfs, `blob${i}`)}`, "bs=1M", "count=100", "status=none"]);
}

test("kill -9 in the middle of a snapshot or a copy: after the restart each is whole or absent", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await bigContainer(d, "c1");
  const snapDir = join(d.dir, "storage-pools/default/containers-snapshots/c1");

  void d.lxc(["snapshot", "c1", "s0"], { allowFail: true });
  await eventually(async () => (await ls(snapDir)).some((f) => f.endsWith(".creating")), "the snapshot copy under way", 20_000, 20);
  await d.kill9();
  await assertNoOrphanCopies(d);
  await d.launch();
  const snaps = JSON.parse((await d.lxc(["query", "/1.0/instances/c1/snapshots"])).stdout) as string[];
  assert.deepEqual(snaps, [], "the interrupted snapshot is absent");
  assert.deepEqual((await ls(snapDir)).filter((f) => f !== ".."), [], "and nothing of its data is left");

  const target = join(d.dir, "storage-pools/default/containers");
  void d.lxc(["copy", "c1", "c2"], { allowFail: true });
  // The copy goes to a scratch name first (.c2.creating, storage/drivers/dir.ts scratchPath).
  await eventually(async () => (await ls(target)).some((f) => f.replace(/^\./, "").startsWith("c2")), "the copy under way", 20_000, 20);
  await d.kill9();
  await assertNoOrphanCopies(d);
  await d.launch();
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/c1"]);
  assert.deepEqual(await ls(target), ["c1"]);
  assert.deepEqual(await ls(join(d.dir, "containers")), ["c1"]);

  // Afterwards, both work whole.
  await d.lxc(["snapshot", "c1", "s0"]);
  await d.lxc(["copy", "c1", "c2"]);
  const size = async (p: string) => (await stat(p)).size;
  assert.equal(await size(join(snapDir, "s0/rootfs/blob5")), 100 * 1024 * 1024);
  assert.equal(await size(join(target, "c2/rootfs/blob5")), 100 * 1024 * 1024);
  await writeFile(join(target, "c2/rootfs/only-c2"), "x");
  assert.deepEqual((await ls(join(target, "c1/rootfs"))).includes("only-c2"), false);
});

test("kill -9 in the middle of a pool move: after the restart the instance is whole in one pool", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await bigContainer(d, "c1");
  await d.lxc(["snapshot", "c1", "s0"]);
  // A second pool, written into the store while the daemon is down.
  await d.stop();
  const p2 = { name: "p2", driver: "dir", config: { source: join(d.dir, "p2") }, description: "", status: "Created" };
  await new DirDriver(join(d.dir, "storage-pools")).createPool(p2);
  const store = SqliteStore.open(databasePath(d.dir));
  await store.put("storage-pools/p2", p2);
  await store.close();
  await d.launch();

  void d.lxc(["move", "c1", "-s", "p2"], { allowFail: true });
  await eventually(async () => (await ls(join(d.dir, "p2/containers"))).length > 0, "the move under way", 20_000, 20);
  await d.kill9();
  await assertNoOrphanCopies(d);
  await d.launch();
  const c1 = JSON.parse((await d.lxc(["query", "/1.0/instances/c1?recursion=1"])).stdout);
  const pool = c1.expanded_devices.root.pool as string;
  const root = pool === "p2" ? join(d.dir, "p2") : join(d.dir, "storage-pools/default");
  const other = pool === "p2" ? join(d.dir, "storage-pools/default") : join(d.dir, "p2");
  assert.deepEqual(await ls(join(root, "containers")), ["c1"]);
  assert.deepEqual(await ls(join(other, "containers")), [], "nothing left in the other pool");
  assert.deepEqual(c1.snapshots.map((s: { name: string }) => s.name), ["s0"]);
  assert.equal((await stat(join(root, "containers/c1/rootfs/blob5"))).size, 100 * 1024 * 1024);
  // And it moves whole afterwards, and starts.
  await d.lxc(["move", "c1", "-s", pool === "p2" ? "default" : "p2"]);
  await d.lxc(["start", "c1"]);
  assert.equal((await d.lxc(["exec", "c1", "--", "sh", "-c", "wc -c < /blob5"])).stdout.trim(), String(100 * 1024 * 1024));
});

test("kill -9 in the middle of a restore: the next start finishes it", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await bigContainer(d, "c1");
  await d.lxc(["snapshot", "c1", "s0"]);
  const rootfs = join(d.dir, "storage-pools/default/containers/c1/rootfs");
  await writeFile(join(rootfs, "after"), "x");
  await d.lxc(["config", "set", "c1", "user.after", "yes"]);
  void d.lxc(["restore", "c1", "s0"], { allowFail: true });
  await eventually(async () => (await ls(join(d.dir, "storage-pools/default/containers"))).some((f) => f.includes(".restoring")), "the restore under way", 20_000, 20);
  await d.kill9();
  await assertNoOrphanCopies(d);
  await d.launch();
  assert.deepEqual(await ls(join(d.dir, "storage-pools/default/containers")), ["c1"]);
  assert.deepEqual((await ls(rootfs)).includes("after"), false, "the file written after the snapshot is gone");
  assert.equal((await stat(join(rootfs, "blob5"))).size, 100 * 1024 * 1024);
  const c1 = JSON.parse((await d.lxc(["query", "/1.0/instances/c1"])).stdout);
  assert.equal(c1.config["user.after"], undefined, "the config is the snapshot's");
  await d.lxc(["start", "c1"]);
});

test("a cancelled copy or snapshot leaves nothing behind", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await bigContainer(d, "c1");
  const containers = join(d.dir, "storage-pools/default/containers");
  const snapDir = join(d.dir, "storage-pools/default/containers-snapshots/c1");
  const cancelWhen = async (send: () => Promise<{ id: string }>, started: () => Promise<boolean>) => {
    const op = await send();
    await eventually(async () => await started(), "the work under way", 20_000, 20);
    await d.client.delete(`/1.0/operations/${op.id}`);
    await eventually(async () => ((await d.client.get<{ status: string }>(`/1.0/operations/${op.id}`)).status === "Cancelled" ? true : undefined), "the operation cancelled");
  };
  await cancelWhen(() => d.client.post("/1.0/instances", { name: "c2", source: { type: "copy", source: "c1" } }), async () => (await ls(containers)).some((f) => f.startsWith("c2") || f.startsWith(".c2.")));
  await cancelWhen(() => d.client.post("/1.0/instances/c1/snapshots", { name: "s0" }), async () => (await ls(snapDir)).length > 0);
  assert.deepEqual(await ls(containers), ["c1"]);
  assert.deepEqual(await ls(snapDir), []);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/c1"]);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/c1/snapshots"])).stdout), []);
  assert.deepEqual(await ls(join(d.dir, "containers")), ["c1"]);
});

test("a snapshot rename cut short after its record moved is finished at the next start", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["snapshot", "c1", "s0"]);
  await d.lxc(["move", "c1/s0", "c1/s1"]);
  // Put the data back under the old name, with the record's rename mark: as a crash would leave it.
  await d.stop();
  const snaps = join(d.dir, "storage-pools/default/containers-snapshots/c1");
  await runCommand("mv", [join(snaps, "s1"), join(snaps, "s0")]);
  const store = SqliteStore.open(databasePath(d.dir));
  const doc = await store.get<Record<string, unknown>>("instance-snapshots/default/c1/s1");
  await store.put("instance-snapshots/default/c1/s1", { ...doc!.value, renamed_from: "s0" });
  await store.close();
  await d.launch();
  assert.deepEqual(await ls(snaps), ["s1"]);
  await d.lxc(["copy", "c1/s1", "c2"]);
  await d.lxc(["restore", "c1", "s1"]);
});

test("the daemon's own timer takes a due snapshot within a minute", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["init", "bb", "c1", "-c", "snapshots.schedule=* * * * *", "-c", "snapshots.schedule.stopped=true", "-c", "snapshots.pattern=tick%d"]);
  const names = await eventually(async () => {
    const l = JSON.parse((await d.lxc(["query", "/1.0/instances/c1/snapshots"])).stdout) as string[];
    return l.length > 0 ? l : undefined;
  }, "a scheduled snapshot", 75_000, 1_000);
  assert.equal(names[0], "/1.0/instances/c1/snapshots/tick0");
  assert.match(await d.logFile(), /took a scheduled snapshot/);
});
