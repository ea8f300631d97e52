import test from "node:test";
import assert from "node:assert/strict";
import { access, lstat, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { EventHub } from "../../src/core/events.js";
import { ImageStore } from "../../src/images/store.js";
import { SqliteStore } from "../../src/state/sqlite.js";
import { btrfsToolsPresent } from "../../src/storage/drivers/btrfs.js";
import { StorageService } from "../../src/storage/service.js";
import { runCommand } from "../helpers/daemon.js";
import { buildBusyboxImages, scratchDir } from "../helpers/images.js";

async function setup(t: test.TestContext) {
  const dir = await scratchDir(t, "lodge-storage-");
  const store = SqliteStore.open(join(dir, "lodge.db"));
  t.after(() => store.close());
  const events = new EventHub();
  const images = new ImageStore({ dir, store, events });
  await images.init();
  const storage = new StorageService({ dir, store, images });
  images.onImageGone = (fp) => storage.releaseImage(fp);
  await storage.init();
  const built = await buildBusyboxImages(t);
  const img = await images.addImage({ project: "default", metadataPath: built.unified });
  return { dir, store, images, storage, fp: img.fingerprint };
}

test("the default dir pool exists after init, once, and survives a second init", async (t) => {
  const { storage, dir } = await setup(t);
  await storage.init();
  const pools = await storage.pools();
  assert.deepEqual(
    pools.map((p) => [p.name, p.driver]),
    [["default", "dir"]],
  );
  assert.ok((await stat(join(dir, "storage-pools/default/containers"))).isDirectory());
  const drivers = await storage.supportedDrivers();
  assert.deepEqual(drivers[0], { name: "dir", version: "1", remote: false });
  // btrfs where btrfs-progs is installed (scripts/setup.sh installs it), with its tools' version.
  assert.deepEqual(
    drivers.slice(1).map((d) => d.name),
    btrfsToolsPresent() ? ["btrfs"] : [],
  );
  if (btrfsToolsPresent()) assert.match(drivers[1]!.version, /^\d+\.\d+/);
});

test("an instance volume is filled from the image's unpacked tree, in LXD's layout", async (t) => {
  const { storage, fp, dir } = await setup(t);
  const { path } = await storage.createInstanceVolume("default", "default", "c1", "container", fp);
  assert.equal(path, join(dir, "storage-pools/default/containers/c1"));
  assert.ok((await stat(join(path, "rootfs/bin/busybox"))).isFile());
  assert.ok((await stat(join(path, "metadata.yaml"))).isFile());
  // The image is unpacked once into the pool (an image volume), and the instance sits on it.
  assert.deepEqual(
    (await storage.volumes("default")).map((v) => [v.project, v.type, v.name, v.image]),
    [
      ["default", "container", "c1", fp],
      ["default", "image", fp, fp],
    ],
  );
  // A second volume of the same name is refused and the first is untouched.
  await assert.rejects(storage.createInstanceVolume("default", "default", "c1", "container", fp), /already exists/);
  assert.ok((await stat(join(path, "rootfs/bin/busybox"))).isFile());
});

test("a failed volume create leaves no record and no directory", async (t) => {
  const { storage, dir } = await setup(t);
  await assert.rejects(
    storage.createInstanceVolume("default", "default", "c2", "container", "f".repeat(64)),
    /not found|No such|unpack/i,
  );
  assert.deepEqual(await storage.volumes(), []);
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/containers")), []);
  await assert.rejects(storage.createInstanceVolume("nopool", "default", "c3", "container"), /Storage pool "nopool" not found/);
});

test("rename and delete move and remove both data and record", async (t) => {
  const { storage, fp, dir } = await setup(t);
  await storage.createInstanceVolume("default", "proj", "a", "container", fp);
  assert.ok((await stat(join(dir, "storage-pools/default/containers/proj_a/rootfs"))).isDirectory());
  const moved = await storage.renameInstanceVolume("default", "proj", "a", "b", "container");
  assert.equal(moved, join(dir, "storage-pools/default/containers/proj_b"));
  await assert.rejects(access(join(dir, "storage-pools/default/containers/proj_a")));
  await storage.deleteInstanceVolume("default", "proj", "b", "container");
  await assert.rejects(access(moved));
  assert.deepEqual(
    (await storage.volumes()).map((v) => [v.type, v.name]),
    [["image", fp]],
  );
});

const MAP = [
  { kind: "u" as const, nsid: 0, hostid: 1_500_000, range: 65536 },
  { kind: "g" as const, nsid: 0, hostid: 1_500_000, range: 65536 },
];

test("a container from an image is an overlay layer over the image volume seen through its id map, shared, and gone without a trace", async (t) => {
  const { storage, fp, dir, images } = await setup(t);
  const pool = join(dir, "storage-pools/default");
  const a = await storage.createInstanceVolume("default", "default", "a", "container", fp, undefined, MAP);
  const b = await storage.createInstanceVolume("default", "default", "b", "container", fp, undefined, MAP);
  assert.deepEqual(a.ownedAs, MAP, "the volume says it is stored shifted to the map");
  // Both see the image, shifted: container root is host 1500000.
  for (const v of [a, b]) {
    const st = await stat(join(v.path, "rootfs/bin/busybox"));
    assert.equal(st.uid, 1_500_000);
    assert.equal((await stat(join(v.path, "rootfs"))).uid, 1_500_000);
    assert.ok((await stat(join(v.path, "metadata.yaml"))).isFile());
  }
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  assert.match(mounts, new RegExp(`${join(a.path, "rootfs")} .* - overlay `));
  // One lower for both, the image volume itself, unchanged (its own ids), with no mount left on it.
  assert.deepEqual(await readdir(join(pool, "images")), [fp]);
  assert.equal((await stat(join(pool, "images", fp, "rootfs/bin/busybox"))).uid, 0);
  // It shares the unpacked image's files (hard links: one filesystem here), it does not copy them.
  const unpacked = await images.ensureUnpacked(fp);
  assert.equal((await stat(join(pool, "images", fp, "rootfs/bin/busybox"))).ino, (await stat(join(unpacked, "rootfs/bin/busybox"))).ino);
  const points = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").map((l) => l.split(" ")[4] ?? "");
  assert.ok(!points.some((p) => p.endsWith("/lower-mnt")), "the idmapped lower is the overlay's own clone: no mount of it is left");

  // A write in one is its own: the other and the image volume do not see it.
  await writeFile(join(a.path, "rootfs/etc/only-a"), "a");
  await rm(join(a.path, "rootfs/bin/busybox"));
  assert.ok((await stat(join(b.path, "rootfs/bin/busybox"))).isFile());
  await assert.rejects(access(join(b.path, "rootfs/etc/only-a")));
  await assert.rejects(access(join(pool, "images", fp, "rootfs/etc/only-a")));
  assert.ok((await stat(join(pool, "images", fp, "rootfs/bin/busybox"))).isFile());

  // A snapshot is a whole, plain tree of what the container sees.
  await storage.snapshotInstanceVolume(a.ref, "s1");
  const snap = storage.snapshotPath(a.ref, "s1");
  assert.ok((await stat(join(snap, "rootfs/etc/only-a"))).isFile());
  await assert.rejects(access(join(snap, "rootfs/bin/busybox")));
  assert.ok((await lstat(join(snap, "rootfs/bin/sh"))).isSymbolicLink());

  // Delete: overlay unmounted, layer and volume gone; the other is untouched.
  await storage.deleteInstanceVolume("default", "default", "a", "container");
  assert.doesNotMatch(await readFile("/proc/self/mountinfo", "utf8"), new RegExp(`${join(a.path, "rootfs")} `));
  assert.deepEqual(await readdir(join(pool, "containers")), ["b"]);
  assert.deepEqual(await readdir(join(pool, "layers/containers")), ["b"]);
  assert.ok((await stat(join(b.path, "rootfs/bin/busybox"))).isFile());
});

test("a layered volume is mounted again at init after its overlay went (a host reboot), and renames keep it whole", async (t) => {
  const { storage, fp, dir, store, images } = await setup(t);
  const v = await storage.createInstanceVolume("default", "default", "c", "container", fp, undefined, MAP);
  await writeFile(join(v.path, "rootfs/etc/mine"), "kept");
  await runCommand("umount", [join(v.path, "rootfs")]);
  assert.deepEqual(await readdir(join(v.path, "rootfs")), []);
  await new StorageService({ dir, store, images }).init();
  assert.equal(await readFile(join(v.path, "rootfs/etc/mine"), "utf8"), "kept");
  assert.ok((await stat(join(v.path, "rootfs/bin/busybox"))).isFile());
  const moved = await storage.renameInstanceVolume("default", "default", "c", "d", "container");
  assert.equal(await readFile(join(moved, "rootfs/etc/mine"), "utf8"), "kept");
  assert.ok((await stat(join(moved, "rootfs/bin/busybox"))).isFile());
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/layers/containers")), ["d"]);
});

test("dir.overlay=false makes plain copies, with the image's own ids", async (t) => {
  const { storage, fp, dir, store } = await setup(t);
  const pool = await storage.pool("default");
  await store.put("storage-pools/default", { ...pool, config: { ...pool.config, "dir.overlay": "false" } });
  const v = await storage.createInstanceVolume("default", "default", "p", "container", fp, undefined, MAP);
  assert.equal(v.ownedAs, undefined);
  assert.equal((await stat(join(v.path, "rootfs/bin/busybox"))).uid, 0);
  await assert.rejects(access(join(dir, "storage-pools/default/layers/containers/p")));
  assert.doesNotMatch(await readFile("/proc/self/mountinfo", "utf8"), new RegExp(`${join(v.path, "rootfs")} `));
});

test("an image deleted while containers sit on it keeps its volumes until the last container goes", async (t) => {
  const { storage, fp, dir, images } = await setup(t);
  const pool = join(dir, "storage-pools/default");
  const a = await storage.createInstanceVolume("default", "default", "a", "container", fp, undefined, MAP);
  const b = await storage.createInstanceVolume("default", "default", "b", "container", fp);
  await images.delete("default", fp);
  assert.deepEqual(await readdir(join(pool, "images")), [fp], "the image volume stays");
  assert.ok((await stat(join(a.path, "rootfs/bin/busybox"))).isFile());
  await storage.deleteInstanceVolume("default", "default", "a", "container");
  assert.deepEqual(await readdir(join(pool, "images")), [fp], "b still uses the image volume");
  assert.ok((await stat(join(b.path, "rootfs/bin/busybox"))).isFile());
  await storage.deleteInstanceVolume("default", "default", "b", "container");
  assert.deepEqual(await readdir(join(pool, "images")), []);
  assert.deepEqual(await storage.volumes(), []);
});

test("an image deleted while no container uses it takes its image volume along", async (t) => {
  const { storage, fp, dir, images } = await setup(t);
  await storage.createInstanceVolume("default", "default", "a", "container", fp, undefined, MAP);
  await storage.deleteInstanceVolume("default", "default", "a", "container");
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/images")), [fp], "kept while the image is");
  await images.delete("default", fp);
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/images")), []);
  assert.deepEqual(await storage.volumes(), []);
});

test("a copy of a layered container is a layer over the same image with a copy of its changes (deletions too)", async (t) => {
  const { storage, fp, dir, images } = await setup(t);
  const a = await storage.createInstanceVolume("default", "default", "a", "container", fp, undefined, MAP);
  await writeFile(join(a.path, "rootfs/etc/only-a"), "a");
  await rm(join(a.path, "rootfs/bin/busybox"));
  await rm(join(a.path, "rootfs/etc"), { recursive: true });
  await mkdir(join(a.path, "rootfs/etc"));
  await writeFile(join(a.path, "rootfs/etc/fresh"), "f");
  const c = await storage.copyInstanceVolume({ from: a.ref, toPool: "default", project: "default", name: "c", type: "container" });
  assert.deepEqual(await readdir(join(c.path, "rootfs/etc")), ["fresh"], "an opaque directory stays opaque");
  await assert.rejects(access(join(c.path, "rootfs/bin/busybox")), "a deleted file stays deleted");
  assert.equal((await stat(join(c.path, "rootfs/etc/fresh"))).uid, 0, "written by host root: its own ids");
  assert.equal((await stat(join(c.path, "rootfs/bin"))).uid, 1_500_000);
  await writeFile(join(c.path, "rootfs/etc/only-c"), "c");
  await assert.rejects(access(join(a.path, "rootfs/etc/only-c")));
  assert.match(await readFile("/proc/self/mountinfo", "utf8"), new RegExp(`${join(c.path, "rootfs")} .* - overlay `));
  // The copy keeps the image volume alive too.
  await images.delete("default", fp);
  await storage.deleteInstanceVolume("default", "default", "a", "container");
  assert.equal(await readFile(join(c.path, "rootfs/etc/fresh"), "utf8"), "f", "the copy does not depend on its source");
  assert.ok((await lstat(join(c.path, "rootfs/bin/sh"))).isSymbolicLink());
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/images")), [fp]);
  await storage.deleteInstanceVolume("default", "default", "c", "container");
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/images")), []);
});

test("a VM from an image is a qcow2 layer over the image volume's disk; its size grows the disk, never shrinks it", async (t) => {
  const dir = await scratchDir(t, "lodge-storage-vm-");
  const store = SqliteStore.open(join(dir, "lodge.db"));
  t.after(() => store.close());
  const tree = join(dir, "vm-image");
  await mkdir(join(tree, "boot"), { recursive: true });
  await writeFile(join(tree, "metadata.yaml"), "architecture: x86_64\ncreation_date: 1\n");
  await writeFile(join(tree, "boot/vmlinuz"), "kernel");
  await runCommand("qemu-img", ["create", "-q", "-f", "qcow2", join(tree, "rootfs.img"), "64M"]);
  let unpacks = 0;
  const storage = new StorageService({ dir, store, images: { ensureUnpacked: async () => (unpacks++, tree), exists: async () => true } });
  await storage.init();
  const fp = "b".repeat(64);
  const a = await storage.createInstanceVolume("default", "default", "vm1", "virtual-machine", fp);
  const b = await storage.createInstanceVolume("default", "default", "vm2", "virtual-machine", fp);
  assert.equal(unpacks, 1, "one image volume for both");
  for (const v of [a, b]) {
    const info = JSON.parse((await runCommand("qemu-img", ["info", "--output=json", "-U", join(v.path, "root.img")])).stdout);
    assert.equal(info.format, "qcow2");
    assert.equal(info["backing-filename"], join(dir, "storage-pools/default/images", fp, "rootfs.img"));
    assert.equal(info["virtual-size"], 64 * 1024 * 1024);
    assert.ok((await stat(join(v.path, "root.img"))).size < 1024 * 1024, "a layer, not a copy");
    assert.equal(await readFile(join(v.path, "boot/vmlinuz"), "utf8"), "kernel");
  }
  await storage.setVolumeQuota(a.ref, 128 * 1024 * 1024);
  const grown = JSON.parse((await runCommand("qemu-img", ["info", "--output=json", "-U", join(a.path, "root.img")])).stdout);
  assert.equal(grown["virtual-size"], 128 * 1024 * 1024);
  await assert.rejects(storage.setVolumeQuota(a.ref, 32 * 1024 * 1024), /would shrink it/);
  // A snapshot and a restore keep a disk that still reads its image.
  await storage.snapshotInstanceVolume(a.ref, "s0");
  await storage.restoreVolumeSnapshot(a.ref, "s0");
  await runCommand("qemu-img", ["check", "-q", join(a.path, "root.img")]);
  for (const n of ["vm1", "vm2"]) await storage.deleteInstanceVolume("default", "default", n, "virtual-machine");
  assert.deepEqual(await readdir(join(dir, "storage-pools/default/virtual-machines")), []);
});
