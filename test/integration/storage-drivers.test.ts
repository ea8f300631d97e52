/**
 * The storage driver contract (src/storage/driver.ts), one suite run against every driver:
 * each case makes its own pool (dir: a temp directory as source; btrfs: a 300 MiB loop file
 * the driver creates in a temp LODGE_DIR) and removes it in t.after, also when the case
 * fails (umount, losetup -d, rm). Then a few btrfs-only cases (nested subvolumes, where the
 * loop file goes) and a real unprivileged container on a btrfs volume.
 */
import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmod, link, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile, chown } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { PoolSpec, StorageDriver, VolumeRef } from "../../src/storage/driver.js";
import { DirDriver, scratchPath } from "../../src/storage/drivers/dir.js";
import { BtrfsDriver, btrfsToolsPresent } from "../../src/storage/drivers/btrfs.js";
import { resolveProgram } from "../../src/sys/spawn.js";
import { loopFs } from "../helpers/loop-fs.js";

const sh = promisify(execFile);
const MiB = 1024 * 1024;

interface Pool {
  driver: StorageDriver;
  pool: PoolSpec;
  /** A volume ref in this pool. */
  vol(name: string, type?: VolumeRef["type"]): VolumeRef;
  /** Temp LODGE_DIR-like directory of the case (0711, so containers' roots can pass). */
  dir: string;
}

interface DriverCase {
  name: string;
  skip: string | false;
  /** Snapshots refuse writes even from root (btrfs read-only subvolumes); dir ones are only closed (0700). */
  readonlySnapshots: boolean;
  make(t: TestContext): Promise<Pool>;
}

/** Whatever is mounted at or below `dir`, deepest first. */
async function mountsBelow(dir: string): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Removes a case's pool whatever state the driver left: its own deletePool, then by hand. */
async function removeAll(dir: string, driver: StorageDriver, pool: PoolSpec): Promise<void> {
  await driver.deletePool(pool).catch(() => {});
  for (const m of await mountsBelow(dir)) await sh("umount", ["-l", m]).catch(() => {});
  const img = join(dir, "disks", `${pool.name}.img`);
  const { stdout } = await sh("losetup", ["-j", img]).catch(() => ({ stdout: "" }));
  for (const dev of stdout.split("\n").map((l) => /^(\/dev\/loop\d+):/.exec(l)?.[1]).filter(Boolean)) await sh("losetup", ["-d", dev!]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}

async function caseDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lodge-sd-"));
  await chmod(dir, 0o711);
  return dir;
}

function poolOf(driver: StorageDriver, pool: PoolSpec, dir: string): Pool {
  return { driver, pool, dir, vol: (name, type = "custom") => ({ pool, type, name }) };
}

const DRIVERS: DriverCase[] = [
  {
    name: "dir",
    skip: false,
    readonlySnapshots: false,
    async make(t) {
      const dir = await caseDir();
      const driver = new DirDriver(join(dir, "storage-pools"));
      const pool: PoolSpec = { name: "p", driver: "dir", config: { source: join(dir, "src") } };
      t.after(() => removeAll(dir, driver, pool));
      pool.config = await driver.createPool(pool);
      return poolOf(driver, pool, dir);
    },
  },
  {
    // Volumes get project ids (the dir driver's quotas); with the limits themselves where the
    // kernel enforces XFS project quotas (prjquota), else the quota case says it has none.
    name: "dir on XFS",
    skip: resolveProgram("mkfs.xfs", process.env.PATH) ? false : "xfsprogs is not installed",
    readonlySnapshots: false,
    async make(t) {
      const dir = await caseDir();
      const fs = await loopFs("xfs", { quotas: true });
      if ("failed" in fs) throw new Error(fs.failed);
      const driver = new DirDriver(join(dir, "storage-pools"));
      const pool: PoolSpec = { name: "p", driver: "dir", config: { source: join(fs.dir, "pool") } };
      t.after(async () => {
        await removeAll(dir, driver, pool);
        await fs.remove();
      });
      await chmod(fs.dir, 0o711);
      pool.config = await driver.createPool(pool);
      return poolOf(driver, pool, dir);
    },
  },
  {
    name: "btrfs",
    skip: btrfsToolsPresent() ? false : "btrfs-progs is not installed",
    readonlySnapshots: true,
    async make(t) {
      const dir = await caseDir();
      const driver = new BtrfsDriver(join(dir, "storage-pools"));
      const pool: PoolSpec = { name: `p${process.pid}`, driver: "btrfs", config: { size: "300MiB" } };
      t.after(() => removeAll(dir, driver, pool));
      pool.config = await driver.createPool(pool);
      return poolOf(driver, pool, dir);
    },
  },
];

/** A tree with what a rootfs holds: owners, modes, a set-uid file, links, xattrs, an empty dir. */
async function makeTree(base: string): Promise<string> {
  const tree = join(base, "tree");
  await mkdir(join(tree, "rootfs/etc"), { recursive: true });
  await mkdir(join(tree, "rootfs/empty"));
  await writeFile(join(tree, "metadata.yaml"), "architecture: x86_64\n");
  await writeFile(join(tree, "rootfs/etc/hostname"), "c1\n");
  await writeFile(join(tree, "rootfs/suid"), "#!/bin/sh\n");
  await chmod(join(tree, "rootfs/suid"), 0o4755);
  await writeFile(join(tree, "rootfs/owned"), "x");
  await chown(join(tree, "rootfs/owned"), 1000, 1001);
  await link(join(tree, "rootfs/etc/hostname"), join(tree, "rootfs/hardlink"));
  await symlink("etc/hostname", join(tree, "rootfs/symlink"));
  await symlink("/nowhere", join(tree, "rootfs/dangling"));
  await sh("setfattr", ["-n", "user.lodge", "-v", "kept", join(tree, "rootfs/etc/hostname")]);
  await sh("setfattr", ["-n", "trusted.lodge", "-v", "also", join(tree, "rootfs/owned")]);
  await writeFile(join(tree, "rootfs/big"), Buffer.alloc(2 * MiB, 7));
  return tree;
}

async function xattr(path: string, name: string): Promise<string> {
  return (await sh("getfattr", ["--only-values", "-n", name, path])).stdout;
}

const exists = (p: string) => lstat(p).then(() => true, () => false);

/**
 * Writes `bytes` in 1 MiB chunks with fsync; resolves with the error that stopped it, if any
 * (libuv has no name for EDQUOT, errno 122).
 */
async function fill(path: string, bytes: number): Promise<string | undefined> {
  const fh = await open(path, "w");
  try {
    for (let done = 0; done < bytes; done += MiB) {
      await fh.write(Buffer.alloc(MiB, 1));
      await fh.sync();
    }
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return err.errno === -122 ? "EDQUOT" : err.code;
  } finally {
    await fh.close().catch(() => {});
  }
}

for (const dc of DRIVERS) {
  const it = (name: string, fn: (t: TestContext, p: Pool) => Promise<void>) =>
    test(`${dc.name}: ${name}`, { skip: dc.skip }, async (t) => fn(t, await dc.make(t)));

  it("a pool is laid out as LXD's, closed to host users below the type directories", async (_t, p) => {
    const root = dirname(dirname(p.driver.mountPath(p.vol("x", "container"))));
    for (const d of ["containers", "containers-snapshots", "images", "custom", "virtual-machines", "virtual-machines-snapshots"]) {
      assert.equal((await stat(join(root, d))).mode & 0o7777, 0o711, d);
    }
    assert.equal((await stat(root)).mode & 0o777, 0o711);
    const r = await p.driver.poolResources(p.pool);
    assert.ok(r.space.total > 0 && r.space.used <= r.space.total, JSON.stringify(r));
    assert.ok(r.inodes.total >= r.inodes.used, JSON.stringify(r));
  });

  it("a volume made from a tree keeps files, owners, modes, set-uid, hard and symbolic links, xattrs", async (_t, p) => {
    const tree = await makeTree(p.dir);
    const v = p.vol("c1", "container");
    await p.driver.createVolume(v, { tree });
    const at = p.driver.mountPath(v);
    assert.equal((await stat(at)).mode & 0o7777, 0o700, "a volume is root's alone");
    const r = join(at, "rootfs");
    assert.equal(await readFile(join(r, "etc/hostname"), "utf8"), "c1\n");
    assert.equal(await readFile(join(at, "metadata.yaml"), "utf8"), "architecture: x86_64\n");
    assert.equal((await stat(join(r, "suid"))).mode & 0o7777, 0o4755);
    const owned = await stat(join(r, "owned"));
    assert.deepEqual([owned.uid, owned.gid], [1000, 1001]);
    assert.equal((await stat(join(r, "hardlink"))).ino, (await stat(join(r, "etc/hostname"))).ino);
    assert.equal((await stat(join(r, "hardlink"))).nlink, 2);
    assert.equal(await readlink(join(r, "symlink")), "etc/hostname");
    assert.equal(await readlink(join(r, "dangling")), "/nowhere");
    assert.ok((await stat(join(r, "empty"))).isDirectory());
    assert.equal(await xattr(join(r, "etc/hostname"), "user.lodge"), "kept");
    assert.equal(await xattr(join(r, "owned"), "trusted.lodge"), "also");
    assert.deepEqual(await readFile(join(r, "big")), Buffer.alloc(2 * MiB, 7));
    // The set-uid file is host root's on disk: no host user may reach it.
    await assert.rejects(sh("runuser", ["-u", "nobody", "--", "test", "-e", join(r, "suid")]), `${join(r, "suid")} is reachable by nobody`);
    await assert.rejects(p.driver.createVolume(v, { tree }), /exists/, "a second create of one name is refused");
    assert.equal(await readFile(join(r, "etc/hostname"), "utf8"), "c1\n");
    // An empty volume too.
    await p.driver.createVolume(p.vol("empty"));
    assert.deepEqual(await readdir(p.driver.mountPath(p.vol("empty"))), []);
  });

  it("a copy is independent of its source, both ways", async (_t, p) => {
    const a = p.vol("a");
    const b = p.vol("b");
    await p.driver.createVolume(a, { tree: await makeTree(p.dir) });
    await p.driver.copyVolume(a, b);
    const [pa, pb] = [p.driver.mountPath(a), p.driver.mountPath(b)];
    assert.equal((await stat(pb)).mode & 0o7777, 0o700);
    assert.equal(await readFile(join(pb, "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal((await stat(join(pb, "rootfs/suid"))).mode & 0o7777, 0o4755);
    await writeFile(join(pb, "rootfs/etc/hostname"), "copy\n");
    await writeFile(join(pb, "rootfs/new"), "n");
    await writeFile(join(pa, "rootfs/big"), "shrunk");
    assert.equal(await readFile(join(pa, "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal(await exists(join(pa, "rootfs/new")), false);
    assert.deepEqual(await readFile(join(pb, "rootfs/big")), Buffer.alloc(2 * MiB, 7));
  });

  it("a snapshot is frozen at its time, closed to host users, and read-only where the driver says", async (_t, p) => {
    const v = p.vol("c1", "container");
    await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
    await p.driver.createSnapshot(v, "snap0");
    const snap = p.driver.snapshotPath(v, "snap0");
    assert.equal(snap, join(dirname(dirname(p.driver.mountPath(v))), "containers-snapshots/c1/snap0"));
    assert.equal((await stat(dirname(snap))).mode & 0o077, 0, "the volume's snapshot directory is root's alone");
    await writeFile(join(p.driver.mountPath(v), "rootfs/after"), "later");
    await writeFile(join(p.driver.mountPath(v), "rootfs/etc/hostname"), "changed\n");
    assert.equal(await exists(join(snap, "rootfs/after")), false);
    assert.equal(await readFile(join(snap, "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal((await stat(join(snap, "rootfs/suid"))).mode & 0o7777, 0o4755);
    if (dc.readonlySnapshots) await assert.rejects(writeFile(join(snap, "rootfs/x"), "x"), { code: "EROFS" });
    await assert.rejects(p.driver.createSnapshot(v, "snap0"), /exists/);
    await p.driver.renameSnapshot(v, "snap0", "snap1");
    assert.equal(await readFile(join(p.driver.snapshotPath(v, "snap1"), "rootfs/etc/hostname"), "utf8"), "c1\n");
    await p.driver.deleteSnapshot(v, "snap1");
    assert.equal(await exists(p.driver.snapshotPath(v, "snap1")), false);
  });

  it("restore brings the snapshot's content back and removes files made after it", async (_t, p) => {
    const v = p.vol("c1", "container");
    await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
    const at = p.driver.mountPath(v);
    await p.driver.createSnapshot(v, "s");
    await writeFile(join(at, "rootfs/after"), "later");
    await writeFile(join(at, "rootfs/etc/hostname"), "changed\n");
    await rm(join(at, "rootfs/owned"));
    await p.driver.restoreSnapshot(v, "s");
    assert.equal(await exists(join(at, "rootfs/after")), false);
    assert.equal(await readFile(join(at, "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal((await stat(join(at, "rootfs/owned"))).uid, 1000);
    // The restored volume is writable, and the snapshot stays as it was.
    await writeFile(join(at, "rootfs/again"), "a");
    assert.equal(await exists(join(p.driver.snapshotPath(v, "s"), "rootfs/again")), false);
    assert.deepEqual((await readdir(dirname(at))).sort(), ["c1"], "nothing left beside the volume");
  });

  it("a restore cut short between its two renames can be done again (as the instances service does at start)", async (_t, p) => {
    const v = p.vol("c1", "container");
    await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
    const at = p.driver.mountPath(v);
    await p.driver.createSnapshot(v, "s");
    await writeFile(join(at, "rootfs/after"), "later");
    // The state a kill -9 leaves after the volume went to its old name, before the copy came in.
    await rename(at, scratchPath(at, "old"));
    await p.driver.restoreSnapshot(v, "s");
    assert.equal(await exists(join(at, "rootfs/after")), false);
    assert.equal(await readFile(join(at, "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.deepEqual(await readdir(dirname(at)), ["c1"], "the old content is gone");
  });

  it("copyFromSnapshot makes an independent, writable volume of the snapshot's content", async (_t, p) => {
    const v = p.vol("c1", "container");
    const c = p.vol("c2", "container");
    await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
    await p.driver.createSnapshot(v, "s");
    await writeFile(join(p.driver.mountPath(v), "rootfs/after"), "later");
    await p.driver.copyFromSnapshot(v, "s", c);
    const pc = p.driver.mountPath(c);
    assert.equal((await stat(pc)).mode & 0o7777, 0o700);
    assert.equal(await exists(join(pc, "rootfs/after")), false);
    await writeFile(join(pc, "rootfs/etc/hostname"), "c2\n");
    assert.equal(await readFile(join(p.driver.snapshotPath(v, "s"), "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal(await readFile(join(p.driver.mountPath(v), "rootfs/etc/hostname"), "utf8"), "c1\n");
  });

  it("rename carries the snapshots; delete removes the volume and its snapshots", async (_t, p) => {
    const v = p.vol("c1", "container");
    await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
    await p.driver.createSnapshot(v, "s1");
    await p.driver.createSnapshot(v, "s2");
    await p.driver.renameVolume(v, "c9");
    const r = p.vol("c9", "container");
    assert.equal(await exists(p.driver.mountPath(v)), false);
    assert.equal(await exists(dirname(p.driver.snapshotPath(v, "s1"))), false);
    assert.equal(await readFile(join(p.driver.mountPath(r), "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.deepEqual((await readdir(dirname(p.driver.snapshotPath(r, "s1")))).sort(), ["s1", "s2"]);
    assert.equal(await readFile(join(p.driver.snapshotPath(r, "s2"), "rootfs/etc/hostname"), "utf8"), "c1\n");
    await p.driver.deleteVolume(r);
    const root = dirname(dirname(p.driver.mountPath(r)));
    assert.deepEqual(await readdir(join(root, "containers")), []);
    assert.deepEqual(await readdir(join(root, "containers-snapshots")), []);
    await p.driver.deleteVolume(r); // deleting what is gone is no error (a revert may do it twice)
  });

  it("a failed create or copy leaves nothing: an abort in the middle, a source that vanished", async (_t, p) => {
    const tree = join(p.dir, "many");
    await mkdir(tree);
    // Enough files that the copy is still running when the abort comes.
    for (let d = 0; d < 40; d++) {
      await mkdir(join(tree, `d${d}`));
      await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(join(tree, `d${d}`, `f${f}`), Buffer.alloc(8192, f))));
    }
    const v = p.vol("c1", "container");
    const typeDir = dirname(p.driver.mountPath(v));
    const ac = new AbortController();
    let settled = false;
    const creating = p.driver.createVolume(v, { tree }, ac.signal).finally(() => (settled = true));
    // Aborted once the copy has begun (something appeared in the type directory).
    while (!settled && !(await readdir(typeDir)).length) await new Promise((r) => setTimeout(r, 2));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, "the copy is still running when the abort comes");
    ac.abort();
    await assert.rejects(creating, { name: "AbortError" });
    assert.deepEqual(await readdir(typeDir), [], "no half volume, no scratch copy");

    await assert.rejects(p.driver.copyVolume(p.vol("gone", "container"), p.vol("c2", "container")));
    assert.deepEqual(await readdir(typeDir), []);
    await assert.rejects(p.driver.copyFromSnapshot(p.vol("gone", "container"), "s", p.vol("c3", "container")));
    assert.deepEqual(await readdir(typeDir), []);
  });

  it("names that look like work in progress (v.creating, v.old, v.restoring) are ordinary names, never taken for scratch", async (_t, p) => {
    for (const n of ["v.creating", "v.old", "v.restoring"]) {
      await p.driver.createVolume(p.vol(n));
      await writeFile(join(p.driver.mountPath(p.vol(n)), "mine"), n);
    }
    const v = p.vol("v");
    const tree = await makeTree(p.dir);
    await p.driver.createVolume(v, { tree });
    await p.driver.createSnapshot(v, "s");
    await p.driver.createSnapshot(v, "s.creating");
    await p.driver.restoreSnapshot(v, "s");
    await p.driver.deleteSnapshot(v, "s");
    assert.ok(await exists(join(p.driver.snapshotPath(v, "s.creating"), "rootfs")));
    await p.driver.deleteVolume(v);
    await p.driver.createVolume(v, { tree });
    await p.driver.copyVolume(v, p.vol("w"));
    await p.driver.deleteVolume(v);
    await p.driver.unmountPool(p.pool);
    await p.driver.mountPool(p.pool); // a start, which puts back what a crash left
    for (const n of ["v.creating", "v.old", "v.restoring"]) assert.equal(await readFile(join(p.driver.mountPath(p.vol(n)), "mine"), "utf8"), n);
    assert.deepEqual((await readdir(dirname(p.driver.mountPath(v)))).sort(), ["v.creating", "v.old", "v.restoring", "w"]);
  });

  it("quotas: a write beyond the limit fails, usage is reported, and a lifted limit lets it through", async (t, p) => {
    if (!(await p.driver.capabilities(p.pool)).quotas) {
      await assert.rejects(p.driver.setQuota(p.vol("x"), 10 * MiB), /quota/);
      t.skip(`the ${dc.name} driver has no quotas`);
      return;
    }
    const v = p.vol("q");
    await p.driver.createVolume(v);
    await p.driver.setQuota(v, 16 * MiB);
    const code = await fill(join(p.driver.mountPath(v), "f"), 40 * MiB);
    assert.ok(code === "EDQUOT" || code === "ENOSPC", `the write stopped with ${code}`);
    await p.driver.createVolume(p.vol("small"));
    await writeFile(join(p.driver.mountPath(p.vol("small")), "f"), Buffer.alloc(MiB));
    await sh("sync");
    const [used, small, none] = await Promise.all([p.driver.usage(v), p.driver.usage(p.vol("small")), p.driver.usage(p.vol("nosuch"))]);
    assert.ok(used !== undefined && used > 4 * MiB && used <= 17 * MiB, `usage ${used}`);
    assert.ok(small !== undefined && small >= MiB && small < 2 * MiB, `usage of the small volume ${small}`);
    assert.equal(none, undefined);
    await p.driver.setQuota(v, undefined);
    await rm(join(p.driver.mountPath(v), "f"));
    assert.equal(await fill(join(p.driver.mountPath(v), "f"), 40 * MiB), undefined);
    // The limit of a restored volume is the volume's, kept across the swap.
    await p.driver.setQuota(v, 64 * MiB);
    await p.driver.createSnapshot(v, "s");
    await p.driver.restoreSnapshot(v, "s");
    assert.ok((await fill(join(p.driver.mountPath(v), "g"), 40 * MiB)) !== undefined, "the restored volume is still limited");
  });

  it("unmountPool then mountPool (a reboot) brings the volumes back; mountPool is idempotent", async (_t, p) => {
    const v = p.vol("c1", "container");
    await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
    await p.driver.createSnapshot(v, "s");
    const before = (await mountsBelow(p.dir)).length;
    await p.driver.unmountPool(p.pool);
    if (p.driver.name === "btrfs") {
      assert.equal(await exists(p.driver.mountPath(v)), false, "the volume is gone with the mount");
      assert.equal((await sh("losetup", ["-j", p.pool.config.source!])).stdout, "", "no loop device left");
    }
    await p.driver.mountPool(p.pool);
    await p.driver.mountPool(p.pool);
    assert.equal((await mountsBelow(p.dir)).length, before, "mounted once");
    assert.equal(await readFile(join(p.driver.mountPath(v), "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal(await readFile(join(p.driver.snapshotPath(v, "s"), "rootfs/etc/hostname"), "utf8"), "c1\n");
    assert.equal(await p.driver.restrictAccess(p.pool), 0);
    await chmod(p.driver.mountPath(v), 0o755);
    assert.equal(await p.driver.restrictAccess(p.pool), 1, "a volume left open is closed again");
    assert.equal((await stat(p.driver.mountPath(v))).mode & 0o777, 0o700);
  });

  it("deletePool removes the pool's own layout (and a loop file it made), and a second create works", async (_t, p) => {
    const root = dirname(dirname(p.driver.mountPath(p.vol("x"))));
    await p.driver.deletePool(p.pool);
    assert.deepEqual(await readdir(root).catch(() => []), [], "the pool's directory is gone or (a user's source) empty");
    assert.deepEqual(await mountsBelow(p.dir), []);
    if (p.driver.name === "btrfs") assert.equal(await exists(p.pool.config.source!), false, "the loop file is removed");
    p.pool.config = await p.driver.createPool({ ...p.pool, config: p.driver.name === "btrfs" ? { size: "300MiB" } : p.pool.config });
    assert.ok((await stat(join(root, "containers"))).isDirectory());
  });
}

// ---- btrfs only: what the contract does not say but the driver must get right ----

const btrfs = DRIVERS.find((d) => d.name === "btrfs")!;
const bt = (name: string, fn: (t: TestContext, p: Pool) => Promise<void>) =>
  test(`btrfs: ${name}`, { skip: btrfs.skip }, async (t) => fn(t, await btrfs.make(t)));

/** A subvolume's root directory has inode 256 (a nested one's placeholder in a snapshot has 2). */
async function isSubvolume(path: string): Promise<boolean> {
  return (await stat(path)).ino === 256;
}

bt("the loop file is <LODGE_DIR>/disks/<pool>.img, of the asked size, and the pool is a btrfs mount", async (t, p) => {
  assert.equal(p.pool.config.source, join(p.dir, "disks", `${p.pool.name}.img`));
  assert.equal(p.pool.config.size, "300MiB");
  assert.equal((await stat(p.pool.config.source!)).size, 300 * MiB);
  assert.equal((await stat(p.pool.config.source!)).mode & 0o777, 0o600, "the image is root's alone");
  assert.equal((await stat(dirname(p.pool.config.source!))).mode & 0o777, 0o700);
  await assert.rejects(sh("runuser", ["-u", "nobody", "--", "head", "-c", "1", p.pool.config.source!]), "a host user cannot read the pool's raw image");
  const root = join(p.dir, "storage-pools", p.pool.name);
  const line = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").find((l) => l.split(" ")[4] === root);
  assert.match(line ?? "", / - btrfs \/dev\/loop\d+ .*user_subvol_rm_allowed/);
  assert.ok(await isSubvolume(root), "the pool's root is the filesystem's top");
  // createPool again with the config it chose changes nothing (a daemon restart, a retry).
  assert.deepEqual(await p.driver.createPool(p.pool), p.pool.config);
  assert.deepEqual(await p.driver.createPool({ ...p.pool, config: {} }), p.pool.config, "the size is read from the file");
  // Reached through a symlink (a LODGE_DIR under one), the pool is still seen as mounted.
  await symlink(p.dir, `${p.dir}-link`);
  t.after(() => rm(`${p.dir}-link`, { force: true }));
  const linked = new BtrfsDriver(join(`${p.dir}-link`, "storage-pools"));
  await linked.mountPool(p.pool);
  assert.equal((await mountsBelow(root)).length, 1, "not mounted twice");
  assert.equal((await mountsBelow(root)).length, 1);
});

bt("volumes are subvolumes; an image volume is read-only once filled, and instances are writable snapshots of it", async (_t, p) => {
  const tree = await makeTree(p.dir);
  const img = p.vol("f".repeat(64), "image");
  await p.driver.createVolume(img, { tree });
  const pi = p.driver.mountPath(img);
  assert.ok(await isSubvolume(pi));
  await assert.rejects(writeFile(join(pi, "rootfs/x"), "x"), { code: "EROFS" });
  const c = p.vol("c1", "container");
  await p.driver.copyVolume(img, c);
  assert.ok(await isSubvolume(p.driver.mountPath(c)));
  await writeFile(join(p.driver.mountPath(c), "rootfs/x"), "x");
  assert.equal(await exists(join(pi, "rootfs/x")), false);
  await p.driver.createSnapshot(c, "s");
  assert.ok(await isSubvolume(p.driver.snapshotPath(c, "s")));
  const ro = (await sh("btrfs", ["property", "get", "-ts", p.driver.snapshotPath(c, "s"), "ro"])).stdout.trim();
  assert.equal(ro, "ro=true");
  await p.driver.deleteVolume(img);
  assert.equal(await exists(pi), false);
  assert.equal(await readFile(join(p.driver.mountPath(c), "rootfs/etc/hostname"), "utf8"), "c1\n", "the instance outlives its image volume");
});

bt("nested subvolumes (systemd's /var/lib/machines) are carried by snapshot, copy and restore, and deleted with the volume", async (_t, p) => {
  const v = p.vol("c1", "container");
  await p.driver.createVolume(v, { tree: await makeTree(p.dir) });
  const at = p.driver.mountPath(v);
  await mkdir(join(at, "rootfs/var/lib"), { recursive: true });
  await sh("btrfs", ["subvolume", "create", join(at, "rootfs/var/lib/machines")]);
  await sh("btrfs", ["subvolume", "create", join(at, "rootfs/var/lib/machines/deeper")]);
  await writeFile(join(at, "rootfs/var/lib/machines/m"), "machine");
  await writeFile(join(at, "rootfs/var/lib/machines/deeper/d"), "deep");

  await p.driver.createSnapshot(v, "s");
  const snap = p.driver.snapshotPath(v, "s");
  assert.equal(await readFile(join(snap, "rootfs/var/lib/machines/m"), "utf8"), "machine");
  assert.equal(await readFile(join(snap, "rootfs/var/lib/machines/deeper/d"), "utf8"), "deep");
  await assert.rejects(writeFile(join(snap, "rootfs/var/lib/machines/x"), "x"), { code: "EROFS" }, "nested snapshots are read-only too");

  await p.driver.copyVolume(v, p.vol("c2", "container"));
  const c2 = p.driver.mountPath(p.vol("c2", "container"));
  assert.ok(await isSubvolume(join(c2, "rootfs/var/lib/machines")));
  await writeFile(join(c2, "rootfs/var/lib/machines/deeper/d"), "copy");
  assert.equal(await readFile(join(at, "rootfs/var/lib/machines/deeper/d"), "utf8"), "deep");

  await writeFile(join(at, "rootfs/var/lib/machines/m"), "changed");
  await p.driver.restoreSnapshot(v, "s");
  assert.equal(await readFile(join(at, "rootfs/var/lib/machines/m"), "utf8"), "machine");
  await writeFile(join(at, "rootfs/var/lib/machines/m"), "writable again");

  await p.driver.copyFromSnapshot(v, "s", p.vol("c3", "container"));
  assert.equal(await readFile(join(p.driver.mountPath(p.vol("c3", "container")), "rootfs/var/lib/machines/deeper/d"), "utf8"), "deep");

  for (const n of ["c1", "c2", "c3"]) await p.driver.deleteVolume(p.vol(n, "container"));
  const root = join(p.dir, "storage-pools", p.pool.name);
  assert.deepEqual(await readdir(join(root, "containers")), []);
  assert.deepEqual(await readdir(join(root, "containers-snapshots")), []);
  assert.equal((await sh("btrfs", ["subvolume", "list", "-o", root])).stdout, "", "no subvolume left in the pool");
  assert.equal((await sh("btrfs", ["subvolume", "list", root])).stdout, "", "none nested anywhere either");
});

bt("a block device as source: formatted when blank, its filesystem kept by deletePool", async (t, p) => {
  const img = join(p.dir, "blank.img");
  await sh("truncate", ["-s", "300M", img]);
  const dev = (await sh("losetup", ["-f", "--show", img])).stdout.trim();
  t.after(() => sh("losetup", ["-d", dev]).catch(() => {}));
  const pool: PoolSpec = { name: "blk", driver: "btrfs", config: { source: dev } };
  t.after(() => removeAll(join(p.dir, "never"), p.driver, pool));
  assert.deepEqual(await p.driver.createPool(pool), { source: dev });
  await p.driver.createVolume({ pool, type: "custom", name: "data" });
  await writeFile(join(p.driver.mountPath({ pool, type: "custom", name: "data" }), "f"), "kept");
  await p.driver.deletePool(pool);
  assert.equal((await sh("blkid", ["-p", "-o", "value", "-s", "TYPE", dev])).stdout.trim(), "btrfs", "the device keeps its filesystem");
  // Not mounted any more; made a pool again, the data is there.
  assert.deepEqual(await mountsBelow(join(p.dir, "storage-pools", "blk")), []);
  await p.driver.createPool(pool);
  assert.equal(await readFile(join(p.driver.mountPath({ pool, type: "custom", name: "data" }), "f"), "utf8"), "kept");
  await p.driver.deletePool(pool);
  // A device holding another filesystem is refused, not formatted.
  await sh("mkfs.ext4", ["-q", "-F", dev]);
  await assert.rejects(p.driver.createPool(pool), /already holds a ext4 filesystem/);
  assert.equal((await sh("blkid", ["-p", "-o", "value", "-s", "TYPE", dev])).stdout.trim(), "ext4");
});

bt("a directory on btrfs as source: a subvolume made for it, bind-mounted at storage-pools/<pool>, left in place by deletePool", async (t, p) => {
  const src = join(p.driver.mountPath(p.vol("holder")), "pool2");
  await p.driver.createVolume(p.vol("holder"));
  const pool: PoolSpec = { name: "sub", driver: "btrfs", config: { source: src } };
  t.after(() => p.driver.deletePool(pool).catch(() => {}));
  assert.deepEqual(await p.driver.createPool(pool), { source: src });
  assert.ok(await isSubvolume(src));
  const v: VolumeRef = { pool, type: "custom", name: "v" };
  await p.driver.createVolume(v);
  assert.equal(p.driver.mountPath(v), join(p.dir, "storage-pools", "sub", "custom", "v"));
  assert.ok(await exists(join(src, "custom", "v")));
  await p.driver.createSnapshot(v, "s");
  await p.driver.deleteVolume(v);
  await p.driver.deletePool(pool);
  assert.deepEqual(await readdir(src), [], "the layout is gone, the user's directory stays");
  await mkdir(join(p.dir, "plain"));
  await assert.rejects(p.driver.createPool({ ...pool, config: { source: join(p.dir, "plain") } }), /not on a btrfs filesystem/);
  await assert.rejects(p.driver.createPool({ ...pool, config: { source: src, size: "1GiB" } }), /"size" applies only/);
});

bt("an unprivileged busybox container runs on a btrfs volume snapshotted from an image volume, idmapped", async (t, p) => {
  const { lxcpath, sharedMap, sh: inContainer, leftovers } = await import("../helpers/driver-container.js");
  const { LxcDriver } = await import("../../src/instances/drivers/lxc/driver.js");
  const { buildBusyboxRootfs } = await import("../../src/images/builder/busybox.js");
  const { emptyRunConfig } = await import("../../src/instances/runconfig.js");
  const tree = join(p.dir, "image-tree");
  await buildBusyboxRootfs(join(tree, "rootfs"), { hostname: "onbtrfs" });
  await writeFile(join(tree, "metadata.yaml"), "architecture: x86_64\n");
  const img = p.vol("b".repeat(64), "image");
  await p.driver.createVolume(img, { tree });
  const vol = p.vol("c1", "container");
  await p.driver.copyVolume(img, vol);

  const name = `lodge-bt${process.pid}`;
  const driver = new LxcDriver({ lxcpath, logLevel: "INFO" });
  const spec = { name, hostname: "onbtrfs", rootfs: join(p.driver.mountPath(vol), "rootfs"), privileged: false, idmap: sharedMap, run: emptyRunConfig() };
  const made = { driver, spec, name };
  try {
    await driver.create(spec);
    await driver.start(spec);
    const r = await inContainer(made, "echo written > /root/f; cat /root/f; id -u; stat -c %u /bin/busybox; hostname");
    assert.deepEqual(r, { code: 0, stdout: "written\n0\n0\nonbtrfs\n", stderr: "" });
    // Idmapped: container root's file is host root's on disk, nothing was shifted.
    const f = await stat(join(spec.rootfs, "root/f"));
    assert.equal(f.uid, 0);
    assert.equal((await stat(join(spec.rootfs, "bin/busybox"))).uid, 0);
    assert.equal(await exists(join(p.driver.mountPath(img), "rootfs/root/f")), false, "the image volume is untouched");
    // A snapshot of the running container's volume, then a copy of it that has the file.
    await p.driver.createSnapshot(vol, "s");
    await p.driver.copyFromSnapshot(vol, "s", p.vol("c2", "container"));
    assert.equal(await readFile(join(p.driver.mountPath(p.vol("c2", "container")), "rootfs/root/f"), "utf8"), "written\n");
  } finally {
    await driver.delete(name, { force: true });
  }
  assert.deepEqual(await leftovers(name), []);
  await p.driver.deleteVolume(vol);
  await p.driver.deleteVolume(img);
});

bt("through the storage service: an image is filled once into an image volume, instances are snapshots of it, copies and snapshots follow", async (t, p) => {
  const { SqliteStore } = await import("../../src/state/sqlite.js");
  const { StorageService } = await import("../../src/storage/service.js");
  const store = SqliteStore.open(join(p.dir, "lodge.db"));
  t.after(() => store.close());
  const tree = await makeTree(p.dir);
  let unpacks = 0;
  let imageExists = true;
  const images = { ensureUnpacked: async () => (unpacks++, tree), exists: async () => imageExists };
  const storage = new StorageService({ dir: p.dir, store, images, drivers: [new DirDriver(join(p.dir, "storage-pools")), p.driver] });
  await storage.init();
  // The pools API (the lead's) writes this record; here it is written as that API would.
  await store.put(`storage-pools/${p.pool.name}`, { ...p.pool, description: "", status: "Created" });
  assert.equal((await storage.capabilities(p.pool.name)).imageVolumes, true);
  const fp = "a".repeat(64);
  const [one, two] = await Promise.all([
    storage.createInstanceVolume(p.pool.name, "default", "c1", "container", fp),
    storage.createInstanceVolume(p.pool.name, "proj", "c2", "container", fp),
  ]);
  assert.equal(unpacks, 1, "one image volume for both instances");
  assert.equal(one.path, join(p.dir, "storage-pools", p.pool.name, "containers/c1"));
  assert.equal(two.path, join(p.dir, "storage-pools", p.pool.name, "containers/proj_c2"));
  for (const path of [one.path, two.path, join(p.dir, "storage-pools", p.pool.name, "images", fp)]) assert.ok(await isSubvolume(path), path);
  assert.equal(await readFile(join(one.path, "rootfs/etc/hostname"), "utf8"), "c1\n");
  await storage.createInstanceVolume(p.pool.name, "default", "c3", "container", fp);
  assert.equal(unpacks, 1, "a later instance reuses the image volume");

  await storage.snapshotInstanceVolume(one.ref, "snap0");
  await writeFile(join(one.path, "rootfs/etc/hostname"), "changed\n");
  const copy = await storage.copyInstanceVolume({ from: one.ref, fromSnapshot: "snap0", toPool: p.pool.name, project: "default", name: "c4", type: "container" });
  assert.equal(await readFile(join(copy.path, "rootfs/etc/hostname"), "utf8"), "c1\n");
  // Across pools (btrfs → the default dir pool) the tree is copied.
  const across = await storage.copyInstanceVolume({ from: one.ref, toPool: "default", project: "default", name: "c5", type: "container" });
  assert.equal(await readFile(join(across.path, "rootfs/etc/hostname"), "utf8"), "changed\n");
  await storage.restoreVolumeSnapshot(one.ref, "snap0");
  assert.equal(await readFile(join(one.path, "rootfs/etc/hostname"), "utf8"), "c1\n");

  // The image is deleted while instances made from it remain: its volume stays until the last goes.
  imageExists = false;
  await storage.releaseImage(fp);
  assert.ok(await isSubvolume(join(p.dir, "storage-pools", p.pool.name, "images", fp)), "kept while in use");
  for (const [project, name] of [["default", "c1"], ["proj", "c2"], ["default", "c3"], ["default", "c4"]] as const) {
    await storage.deleteInstanceVolume(p.pool.name, project, name, "container");
  }
  await storage.deleteInstanceVolume("default", "default", "c5", "container");
  assert.deepEqual(await storage.volumes(), [], "the last instance took the image volume along");
  assert.equal((await sh("btrfs", ["subvolume", "list", join(p.dir, "storage-pools", p.pool.name)])).stdout, "", "no subvolume left");
});

bt("optimized backup: btrfs send streams of a volume and its snapshots, received into another pool whole", async (t, p) => {
  const d = p.driver as BtrfsDriver;
  const v = p.vol("c1", "container");
  await d.createVolume(v, { tree: await makeTree(p.dir) });
  const at = d.mountPath(v);
  await d.createSnapshot(v, "s1");
  await writeFile(join(at, "rootfs/second"), "2");
  await d.createSnapshot(v, "s2");
  await writeFile(join(at, "rootfs/etc/hostname"), "now\n");
  await rm(join(at, "rootfs/big"));

  const out = join(p.dir, "backup");
  const files = await d.exportOptimized(v, ["s1", "s2"], out);
  assert.deepEqual(files, ["snapshots/s1.bin", "snapshots/s2.bin", "container.bin"]);
  assert.ok((await stat(join(out, "snapshots/s2.bin"))).size < (await stat(join(out, "snapshots/s1.bin"))).size, "s2 is incremental on s1");
  assert.deepEqual((await readdir(dirname(at))).sort(), ["c1"], "no temporary snapshot left");

  // Into a second pool (its own loop file), as an import on another host would.
  const q = await btrfs.make(t);
  const w = q.vol("c9", "container");
  await (q.driver as BtrfsDriver).importOptimized(w, ["s1", "s2"], out);
  const wt = q.driver.mountPath(w);
  assert.equal((await stat(wt)).mode & 0o7777, 0o700);
  assert.equal(await readFile(join(wt, "rootfs/etc/hostname"), "utf8"), "now\n");
  assert.equal(await exists(join(wt, "rootfs/big")), false);
  assert.equal((await stat(join(wt, "rootfs/owned"))).uid, 1000);
  assert.equal((await stat(join(wt, "rootfs/suid"))).mode & 0o7777, 0o4755);
  assert.equal(await xattr(join(wt, "rootfs/etc/hostname"), "user.lodge"), "kept");
  await writeFile(join(wt, "rootfs/writable"), "yes");
  const s1 = q.driver.snapshotPath(w, "s1");
  assert.equal(await exists(join(s1, "rootfs/second")), false);
  assert.deepEqual(await readFile(join(s1, "rootfs/big")), Buffer.alloc(2 * MiB, 7));
  assert.equal(await readFile(join(q.driver.snapshotPath(w, "s2"), "rootfs/second"), "utf8"), "2");
  await assert.rejects(writeFile(join(s1, "rootfs/x"), "x"), { code: "EROFS" });
  assert.deepEqual((await readdir(dirname(wt))).sort(), ["c9"], "no scratch left");

  // A damaged stream leaves nothing: no volume, no snapshot, no scratch.
  await writeFile(join(out, "container.bin"), "not a stream");
  const x = q.vol("c8", "container");
  await assert.rejects((q.driver as BtrfsDriver).importOptimized(x, ["s1", "s2"], out));
  assert.deepEqual((await readdir(dirname(wt))).sort(), ["c9"]);
  assert.equal(await exists(dirname(q.driver.snapshotPath(x, "s1"))), false);

  // Nested subvolumes cannot travel in a send stream: refused, not dropped.
  await sh("btrfs", ["subvolume", "create", join(at, "rootfs/nested")]);
  await assert.rejects(d.exportOptimized(v, [], join(p.dir, "backup2")), /nested subvolumes \(rootfs\/nested\)/);
});

test("lodged offers the btrfs driver where btrfs-progs is installed (GET /1.0 environment)", { skip: btrfs.skip }, async (t) => {
  const { TestDaemon } = await import("../helpers/daemon.js");
  const d = await TestDaemon.start(t);
  const env = (await d.client.get<import("../../src/api/server.js").Server>("/1.0")).environment;
  assert.equal(env.storage, "dir | btrfs");
  const progs = /v([\d.]+)/.exec((await sh("btrfs", ["--version"])).stdout)![1];
  assert.equal(env.storage_version, `1 | ${progs}`);
  assert.deepEqual(
    env.storage_supported_drivers.map((s) => s.Name),
    ["dir", "btrfs"],
  );
});

bt("a start puts back what a crash left: half creates and copies go, a restore cut short is finished", async (_t, p) => {
  const d = p.driver as BtrfsDriver;
  const custom = join(p.dir, "storage-pools", p.pool.name, "custom");
  const subvol = async (path: string, content: string, readonly = false) => {
    await sh("btrfs", ["subvolume", "create", path]);
    await writeFile(join(path, "f"), content);
    if (readonly) await sh("btrfs", ["property", "set", "-ts", path, "ro", "true"]);
  };
  await subvol(join(custom, ".a.creating"), "half");
  // Killed between a restore's two renames: the volume is missing, its copy and old self remain.
  await subvol(join(custom, ".b.old"), "before restore");
  await subvol(join(custom, ".b.restoring"), "restored");
  // Killed after both renames, and before the swap.
  await subvol(join(custom, "c"), "restored");
  await subvol(join(custom, ".c.old"), "before restore");
  await subvol(join(custom, "e"), "kept");
  await subvol(join(custom, ".e.restoring"), "half a restore");
  // A snapshot, an import and an export cut short.
  await mkdir(join(p.dir, "storage-pools", p.pool.name, "custom-snapshots", "e"), { mode: 0o700 });
  await subvol(join(p.dir, "storage-pools", p.pool.name, "custom-snapshots", "e", ".s.creating"), "half", true);
  await mkdir(join(custom, ".g.receiving", "0"), { recursive: true });
  await subvol(join(custom, ".g.receiving", "0", "snap"), "received", true);
  await subvol(join(custom, ".e.sending-0a1b2c3d"), "frozen", true);

  await d.unmountPool(p.pool);
  await d.mountPool(p.pool);
  assert.deepEqual((await readdir(custom)).sort(), ["b", "c", "e"]);
  assert.equal(await readFile(join(custom, "b", "f"), "utf8"), "restored");
  assert.equal(await readFile(join(custom, "c", "f"), "utf8"), "restored");
  assert.equal(await readFile(join(custom, "e", "f"), "utf8"), "kept");
  assert.deepEqual(await readdir(join(p.dir, "storage-pools", p.pool.name, "custom-snapshots", "e")), []);
  const left = (await sh("btrfs", ["subvolume", "list", "-o", join(p.dir, "storage-pools", p.pool.name)])).stdout;
  assert.deepEqual(left.trim().split("\n").map((l) => l.split(" path ")[1]).sort(), ["custom/b", "custom/c", "custom/e"]);
});
