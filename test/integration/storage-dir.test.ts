import test from "node:test";
import assert from "node:assert/strict";
import { access, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { EventHub } from "../../src/core/events.js";
import { ImageStore } from "../../src/images/store.js";
import { SqliteStore } from "../../src/state/sqlite.js";
import { btrfsToolsPresent } from "../../src/storage/drivers/btrfs.js";
import { StorageService } from "../../src/storage/service.js";
import { buildBusyboxImages, scratchDir } from "../helpers/images.js";

async function setup(t: test.TestContext) {
  const dir = await scratchDir(t, "lodge-storage-");
  const store = SqliteStore.open(join(dir, "lodge.db"));
  t.after(() => store.close());
  const events = new EventHub();
  const images = new ImageStore({ dir, store, events });
  await images.init();
  const storage = new StorageService({ dir, store, images });
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
  assert.deepEqual(
    (await storage.volumes("default")).map((v) => [v.project, v.type, v.name, v.image]),
    [["default", "container", "c1", fp]],
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
  assert.deepEqual(await storage.volumes(), []);
});
