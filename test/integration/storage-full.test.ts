import test from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { ls, storeKeys } from "../helpers/backups.js";

// A real driver failure in the middle of the work: a btrfs pool too small for what is put in
// it runs out of space (ENOSPC from tar or cp). Nothing half-made may stay: no volume, no
// scratch under the pool, no record.

async function assertNothingOf(d: TestDaemon, name: string, what: string) {
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/big"], `${what}: instances`);
  assert.deepEqual(await ls(join(d.dir, "storage-pools/small/containers")), [], `${what}: a volume or its scratch was left`);
  assert.deepEqual(await ls(join(d.dir, "storage-pools/small/containers-snapshots")), [], `${what}: a snapshot was left`);
  for (const prefix of [`instances/default/${name}`, `instance-snapshots/default/${name}/`, "storage-volumes/small/default/container/"])
    assert.deepEqual(storeKeys(d.dir, prefix), [], `${what}: ${prefix}`);
  assert.deepEqual((await ls(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], `${what}: import scratch left`);
  assert.deepEqual(await ls(join(d.dir, "containers")), ["big"], `${what}: liblxc config left`);
}

test("a pool that fills up in the middle of an import or of a copy keeps no half volume and no row", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["storage", "create", "small", "btrfs", "size=160MiB"]);
  await d.lxc(["launch", "bb", "big"]);
  await d.lxc(["exec", "big", "--", "sh", "-c", "dd if=/dev/urandom of=/a bs=1M count=64 2>/dev/null"]);
  await d.lxc(["snapshot", "big", "s0"]);
  await d.lxc(["exec", "big", "--", "sh", "-c", "dd if=/dev/urandom of=/b bs=1M count=200 2>/dev/null"]);
  await d.lxc(["stop", "-f", "big"]);
  const file = join(d.dir, "big.tar");
  const ex = await d.lodge(["export", "big", file, "--compression", "none"]);
  assert.equal(ex.code, 0, ex.stderr);

  // The import: the snapshot fits and is taken, the instance's tree does not.
  const im = await d.lxc(["import", file, "big2", "--storage", "small"], { allowFail: true });
  assert.notEqual(im.code, 0, "the import into a full pool succeeded");
  assert.match(im.stderr, /No space left on device/);
  assert.match(im.stderr, /-- backup\/container failed/, "the failure came after the snapshot was taken");
  await assertNothingOf(d, "big2", "import");

  // The copy across pools: the tree is copied into the small pool and does not fit.
  const cp = await d.lxc(["copy", "big", "big3", "--storage", "small"], { allowFail: true });
  assert.notEqual(cp.code, 0, "the copy into a full pool succeeded");
  assert.match(cp.stderr, /No space left on device/);
  await assertNothingOf(d, "big3", "copy");
});
