/**
 * The dir driver's quotas, on XFS and ext4 project quotas (issue 11): each test makes its own
 * filesystem on a loop file (test/helpers/loop-fs.ts) and removes it after the daemon that used
 * it. Volumes are projects of their own whatever the kernel enforces (checked on XFS, which keeps
 * project ids also without quotas); the limits themselves, through the real `lxc` client, need
 * a kernel built with XFS or ext4 quota support, and are skipped, saying so, where it has none.
 * A pool whose filesystem has no project quotas refuses a size, as any pool without quotas.
 */
import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PoolSpec, VolumeRef } from "../../src/storage/driver.js";
import { DirDriver } from "../../src/storage/drivers/dir.js";
import { btrfsToolsPresent } from "../../src/storage/drivers/btrfs.js";
import { ID_BASE } from "../../src/storage/drivers/project-quota.js";
import { nativeCalls } from "../../src/sys/native.js";
import { resolveProgram } from "../../src/sys/spawn.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon } from "../helpers/daemon.js";
import { loopFs, type LoopFs } from "../helpers/loop-fs.js";

const MiB = 1024 * 1024;
const noXfs = resolveProgram("mkfs.xfs", process.env.PATH) ? false : "xfsprogs is not installed";

/** A loop filesystem removed when the test ends (after-hooks run in the order added: add it after the daemon's). */
async function fsFor(t: TestContext, kind: "xfs" | "ext4", quotas: boolean): Promise<LoopFs> {
  const fs = await loopFs(kind, { quotas });
  if ("failed" in fs) throw new Error(fs.failed);
  t.after(() => fs.remove());
  return fs;
}

function projectOf(path: string): { id: number; inherit: boolean } {
  return nativeCalls()!.projectOf(path)!;
}

test("dir on XFS: every volume is a project of its own, which what is written in it joins; snapshots stay out; copies and restores get their own", { skip: noXfs }, async (t) => {
  const fs = await fsFor(t, "xfs", false);
  const driver = new DirDriver(join(fs.dir, "unused"));
  const pool: PoolSpec = { name: "p", driver: "dir", config: { source: join(fs.dir, "pool") } };
  pool.config = await driver.createPool(pool);
  t.after(() => driver.deletePool(pool).catch(() => {}));
  const vol = (name: string): VolumeRef => ({ pool, type: "custom", name });
  const tree = join(fs.dir, "tree");
  await mkdir(join(tree, "d"), { recursive: true });
  await writeFile(join(tree, "d/f"), "x");

  const a = vol("a");
  await driver.createVolume(a, { tree });
  const idA = projectOf(driver.mountPath(a)).id;
  assert.equal(idA, (await stat(driver.mountPath(a))).ino + ID_BASE, "the id is the directory's inode number past ID_BASE");
  assert.equal(projectOf(driver.mountPath(a)).inherit, true);
  assert.equal(projectOf(join(driver.mountPath(a), "d/f")).id, idA, "what was copied in joined the project");
  await writeFile(join(driver.mountPath(a), "d/new"), "y");
  assert.equal(projectOf(join(driver.mountPath(a), "d/new")).id, idA, "what is written later joins it too");

  await driver.createVolume(vol("empty"));
  const idEmpty = projectOf(driver.mountPath(vol("empty"))).id;
  assert.ok(idEmpty >= ID_BASE && idEmpty !== idA, "an empty volume has its own");

  await driver.createSnapshot(a, "s");
  assert.equal(projectOf(join(driver.snapshotPath(a, "s"), "d/f")).id, 0, "a snapshot is not charged to the volume");
  await driver.copyVolume(a, vol("b"));
  const idB = projectOf(driver.mountPath(vol("b"))).id;
  assert.ok(idB >= ID_BASE && idB !== idA, "a copy is a project of its own");
  assert.equal(projectOf(join(driver.mountPath(vol("b")), "d/f")).id, idB);

  await driver.restoreSnapshot(a, "s");
  const restored = projectOf(driver.mountPath(a)).id;
  assert.equal(restored, (await stat(driver.mountPath(a))).ino + ID_BASE, "the restored tree has its own directory's id");
  assert.equal(projectOf(join(driver.mountPath(a), "d/f")).id, restored);
  await driver.renameVolume(a, "a2");
  assert.equal(projectOf(driver.mountPath(vol("a2"))).id, restored, "a rename keeps the id");

  // Without prjquota (this mount), the pool has no quotas: a size is refused, no usage is shown.
  assert.equal((await driver.capabilities(pool)).quotas, false);
  await assert.rejects(driver.setQuota(vol("b"), 10 * MiB), /quotas only on XFS or ext4 mounted with project quotas/);
  await driver.setQuota(vol("b"), undefined); // lifting nothing is fine
  assert.equal(await driver.usage(vol("b")), undefined);
  for (const n of ["a2", "b", "empty"]) await driver.deleteVolume(vol(n));
});

const sh = (d: TestDaemon, c: string, cmd: string) => d.lxc(["exec", c, "--", "sh", "-c", cmd], { allowFail: true });
const write = (d: TestDaemon, c: string, file: string, mib: number) => sh(d, c, `dd if=/dev/zero of=${file} bs=1M count=${mib} && sync`);

/**
 * Where the quota test's pool "q" goes: a btrfs loop file lodged makes (qgroups: the same
 * instance and volume paths, on a kernel that has them), or a dir pool on a loop XFS or ext4
 * mounted with prjquota. A string says why it cannot be here.
 */
const QUOTA_POOLS: { name: string; make(t: TestContext, d: TestDaemon): Promise<string | undefined> }[] = [
  {
    name: "btrfs (qgroups)",
    async make(_t, d) {
      if (!btrfsToolsPresent()) return "btrfs-progs is not installed";
      await d.lxc(["storage", "create", "q", "btrfs", "size=300MiB"]);
    },
  },
  ...(["xfs", "ext4"] as const).map((kind) => ({
    name: `dir on ${kind} with project quotas`,
    async make(t: TestContext, d: TestDaemon) {
      if (kind === "xfs" && noXfs) return noXfs;
      const fs = await loopFs(kind, { quotas: true });
      if ("failed" in fs) return `${kind} with project quotas cannot be mounted here: ${fs.failed}`;
      t.after(() => fs.remove()); // after the daemon's own clean-up (added first), which stops its containers
      if (!fs.quotas) return `this kernel does not enforce ${kind} project quotas: ${fs.why}`;
      await d.lxc(["storage", "create", "q", "dir", `source=${join(fs.dir, "pool")}`]);
      assert.equal((await d.client.get<{ config: Record<string, string> }>("/1.0/storage-pools/q")).config.source, join(fs.dir, "pool"));
    },
  })),
];

for (const qp of QUOTA_POOLS) {
  test(`${qp.name}: a root disk size holds the container, its usage shows, a larger size lets more in; from a profile, an override, and on a custom volume too`, async (t) => {
    const d = await TestDaemon.start(t);
    const cannot = await qp.make(t, d);
    if (cannot) return t.skip(cannot);
    await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
    await d.lxc(["launch", "bb", "c1", "-s", "q", "-d", "root,size=20MiB"]);

    const big = await write(d, "c1", "/big", 40);
    assert.notEqual(big.code, 0, "40 MiB do not fit in 20 MiB");
    assert.match(big.stderr, /Disk quota exceeded/);
    assert.equal((await sh(d, "c1", "rm -f /big")).code, 0);
    assert.equal((await write(d, "c1", "/small", 10)).code, 0, "10 MiB fit");

    const state = await d.client.get<{ disk: Record<string, { usage: number }> }>("/1.0/instances/c1/state");
    const used = state.disk.root?.usage;
    assert.ok(used !== undefined && used >= 10 * MiB && used <= 20 * MiB, `root usage ${used}`);
    assert.match((await d.lxc(["info", "c1"])).stdout, /Disk usage:\n\s+root: \d/);
    assert.match((await d.lxc(["storage", "volume", "info", "q", "container/c1"])).stdout, /Usage: \d/);

    // A larger size on the running container lets more in at once.
    await d.lxc(["config", "device", "set", "c1", "root", "size=80MiB"]);
    assert.equal((await write(d, "c1", "/big", 40)).code, 0, "40 MiB more fit in 80 MiB");

    // A root disk from a profile: its size, then an instance's override of it.
    await d.lxc(["profile", "create", "qp"]);
    await d.lxc(["profile", "device", "add", "qp", "root", "disk", "path=/", "pool=q"]);
    await d.lxc(["launch", "bb", "c2", "-p", "qp"]);
    await d.lxc(["profile", "device", "set", "qp", "root", "size=20MiB"]);
    assert.match((await write(d, "c2", "/big", 40)).stderr, /Disk quota exceeded/, "the profile's size holds c2");
    await d.lxc(["config", "device", "override", "c2", "root", "size=80MiB"]);
    assert.equal((await sh(d, "c2", "rm -f /big")).code, 0);
    assert.equal((await write(d, "c2", "/big", 40)).code, 0, "the override's larger size lets 40 MiB in");

    await d.lxc(["storage", "volume", "create", "q", "v", "size=16MiB"]);
    await d.lxc(["storage", "volume", "attach", "q", "v", "c1", "/data"]);
    assert.match((await write(d, "c1", "/data/f", 40)).stderr, /Disk quota exceeded/, "the volume holds its own size, apart from the root's");
    assert.match((await d.lxc(["storage", "volume", "info", "q", "v"])).stdout, /Usage: \d/);
    const vstate = await d.client.get<{ usage: { used: number; total: number } }>("/1.0/storage-pools/q/volumes/custom/v/state");
    assert.ok(vstate.usage.used > 8 * MiB && vstate.usage.used <= 16 * MiB, `volume usage ${vstate.usage.used}`);
    assert.equal(vstate.usage.total, 16 * MiB);
    await d.lxc(["storage", "volume", "set", "q", "v", "size=64MiB"]);
    assert.equal((await sh(d, "c1", "rm /data/f")).code, 0);
    assert.equal((await write(d, "c1", "/data/f", 40)).code, 0, "a larger volume size lets 40 MiB in");

    await d.lxc(["delete", "-f", "c1", "c2"]);
    await d.lxc(["profile", "delete", "qp"]);
    await d.lxc(["storage", "volume", "delete", "q", "v"]);
    await d.lxc(["storage", "delete", "q"]);
  });
}

for (const [kind, what] of [["ext4", "plain ext4"], ["xfs", "XFS without prjquota"]] as const) {
  test(`a dir pool on ${what} refuses a root disk size and a volume size, saying why`, { skip: kind === "xfs" ? noXfs : false }, async (t) => {
    const d = await TestDaemon.start(t);
    const fs = await loopFs(kind, { quotas: false });
    if ("failed" in fs) throw new Error(fs.failed);
    t.after(() => fs.remove());
    await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
    await d.lxc(["storage", "create", "plain", "dir", `source=${join(fs.dir, "pool")}`]);
    const launched = await d.lxc(["launch", "bb", "c1", "-s", "plain", "-d", "root,size=20MiB"], { allowFail: true });
    assert.notEqual(launched.code, 0);
    assert.match(launched.stderr, /Device "root": "size" needs a storage pool with quotas; pool "plain" has none/);
    assert.deepEqual(await d.client.get<string[]>("/1.0/instances"), []);
    await d.lxc(["profile", "create", "pp"]);
    await d.lxc(["profile", "device", "add", "pp", "root", "disk", "path=/", "pool=plain"]);
    await d.lxc(["launch", "bb", "c1", "-p", "pp"]);
    const override = await d.lxc(["config", "device", "override", "c1", "root", "size=20MiB"], { allowFail: true });
    assert.match(override.stderr, /"size" needs a storage pool with quotas; pool "plain" has none/);
    const state = await d.client.get<{ disk: Record<string, unknown> }>("/1.0/instances/c1/state");
    assert.deepEqual(state.disk, {}, "no usage where it cannot be read cheaply");
    const vol = await d.lxc(["storage", "volume", "create", "plain", "v", "size=16MiB"], { allowFail: true });
    assert.match(vol.stderr, /Storage pool "plain" \(driver dir\) has no quotas: "size" cannot be set on its volumes/);
    await d.lxc(["delete", "-f", "c1"]);
    await d.lxc(["profile", "delete", "pp"]);
    await d.lxc(["storage", "delete", "plain"]);
  });
}
