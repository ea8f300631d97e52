import test from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon } from "../helpers/daemon.js";
import { storagePoolArgs, STORAGE_DRIVERS } from "../helpers/storage-pools.js";

// Storage pools and custom volumes through the real `lxc` client (5.0.2), on each driver:
// pools created on the test's own directories or loop files, and removed with them.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

const sh = (d: TestDaemon, c: string, cmd: string) => d.lxc(["exec", c, "--", "sh", "-c", cmd], { allowFail: true });

for (const driver of STORAGE_DRIVERS) {
  test(`${driver}: lxc storage create, list, show, info, set and delete`, async (t) => {
    const d = await TestDaemon.start(t);
    const args = await storagePoolArgs(t, driver);
    assert.equal((await d.lxc(["storage", "create", "p1", driver, ...args])).stdout, "Storage pool p1 created\n");
    const listed = await d.lxc(["storage", "list", "--format", "csv"]);
    assert.match(listed.stdout, new RegExp(`^p1,${driver},`, "m"));
    assert.match(listed.stdout, /^default,dir,/m);
    const shown = await d.lxc(["storage", "show", "p1"]);
    assert.match(shown.stdout, new RegExp(`driver: ${driver}`));
    assert.match(shown.stdout, /source: \//);
    const res = await d.client.get<{ space: { total: number; used: number } }>("/1.0/storage-pools/p1/resources");
    assert.ok(res.space.total > 0 && res.space.used >= 0, JSON.stringify(res));
    await d.lxc(["storage", "set", "p1", "user.owner", "tests"]);
    assert.equal((await d.lxc(["storage", "get", "p1", "user.owner"])).stdout.trim(), "tests");
    const fixed = await d.lxc(["storage", "set", "p1", "source", "/elsewhere"], { allowFail: true });
    assert.match(fixed.stderr, /"source" cannot be changed/);
    assert.equal((await d.lxc(["storage", "delete", "p1"])).stdout, "Storage pool p1 deleted\n");
    assert.doesNotMatch((await d.lxc(["storage", "list", "--format", "csv"])).stdout, /^p1,/m);
  });

  test(`${driver}: a custom volume keeps its data across attaches, to one container then another; snapshot and restore`, async (t) => {
    const d = await daemonWithImage(t);
    await d.lxc(["storage", "create", "p1", driver, ...(await storagePoolArgs(t, driver))]);
    await d.lxc(["storage", "volume", "create", "p1", "v1"]);
    await d.lxc(["launch", "bb", "c1"]);
    await d.lxc(["launch", "bb", "c2"]);
    await d.lxc(["storage", "volume", "attach", "p1", "v1", "c1", "/data"]);
    assert.equal((await sh(d, "c1", "echo hello > /data/f && chown 1000:1000 /data/f && ls -ln /data/f")).code, 0);
    const used = await d.client.get<{ used_by: string[] }>("/1.0/storage-pools/p1/volumes/custom/v1");
    assert.deepEqual(used.used_by, ["/1.0/instances/c1"]);
    // Attached: it cannot be deleted, nor its pool.
    assert.match((await d.lxc(["storage", "volume", "delete", "p1", "v1"], { allowFail: true })).stderr, /still in use.*c1/);
    assert.match((await d.lxc(["storage", "delete", "p1"], { allowFail: true })).stderr, /currently in use/);
    await d.lxc(["storage", "volume", "detach", "p1", "v1", "c1"]);
    await d.lxc(["storage", "volume", "attach", "p1", "v1", "c2", "/mnt/v"]);
    assert.equal((await sh(d, "c2", "cat /mnt/v/f")).stdout, "hello\n", "the data came along");
    assert.match((await sh(d, "c2", "ls -ln /mnt/v/f")).stdout, / 1000 +1000 /, "owners show with c2's own ids");
    await d.lxc(["storage", "volume", "detach", "p1", "v1", "c2"]);

    await d.lxc(["storage", "volume", "snapshot", "p1", "v1", "s0"]);
    await d.lxc(["storage", "volume", "attach", "p1", "v1", "c1", "/data"]);
    await sh(d, "c1", "echo later > /data/later");
    await d.lxc(["storage", "volume", "detach", "p1", "v1", "c1"]);
    await d.lxc(["storage", "volume", "restore", "p1", "v1", "s0"]);
    await d.lxc(["storage", "volume", "attach", "p1", "v1", "c1", "/data"]);
    assert.equal((await sh(d, "c1", "ls /data")).stdout, "f\n", "the file written after the snapshot is gone");
  });

  test(`${driver}: volume copy and move between pools, and rename; a copy never shares data`, async (t) => {
    const d = await daemonWithImage(t);
    await d.lxc(["storage", "create", "p1", driver, ...(await storagePoolArgs(t, driver))]);
    const other = await mkdtemp(join(tmpdir(), "lodge-pool2-"));
    t.after(() => rm(other, { recursive: true, force: true }));
    await d.lxc(["storage", "create", "p2", "dir", `source=${join(other, "p2")}`]);
    await d.lxc(["storage", "volume", "create", "p1", "v1"]);
    await d.lxc(["launch", "bb", "c1"]);
    await d.lxc(["storage", "volume", "attach", "p1", "v1", "c1", "/data"]);
    await sh(d, "c1", "echo one > /data/f");
    await d.lxc(["storage", "volume", "detach", "p1", "v1", "c1"]);
    await d.lxc(["storage", "volume", "copy", "p1/v1", "p1/v1copy"]);
    await d.lxc(["storage", "volume", "copy", "p1/v1", "p2/v1other"]);
    await d.lxc(["storage", "volume", "attach", "p1", "v1copy", "c1", "/copy"]);
    await d.lxc(["storage", "volume", "attach", "p2", "v1other", "c1", "/other"]);
    await sh(d, "c1", "echo changed > /copy/f");
    assert.equal((await sh(d, "c1", "cat /other/f")).stdout, "one\n");
    await d.lxc(["storage", "volume", "attach", "p1", "v1", "c1", "/data"]);
    assert.equal((await sh(d, "c1", "cat /data/f")).stdout, "one\n", "the source did not change with its copy");
    await d.lxc(["storage", "volume", "detach", "p1", "v1", "c1"]);
    await d.lxc(["storage", "volume", "rename", "p1", "v1", "v2"]);
    await d.lxc(["storage", "volume", "move", "p1/v2", "p2/v3"]);
    const names = (p: string) => d.client.get<string[]>(`/1.0/storage-pools/${p}/volumes/custom`);
    assert.deepEqual((await names("p1")).sort(), ["/1.0/storage-pools/p1/volumes/custom/v1copy"]);
    assert.deepEqual((await names("p2")).sort(), ["/1.0/storage-pools/p2/volumes/custom/v1other", "/1.0/storage-pools/p2/volumes/custom/v3"]);
    await d.lxc(["storage", "volume", "attach", "p2", "v3", "c1", "/moved"]);
    assert.equal((await sh(d, "c1", "cat /moved/f")).stdout, "one\n");
  });
}

test("refused with a clear error: unknown driver, bad names and keys, a missing volume on a disk", async (t) => {
  const d = await daemonWithImage(t);
  assert.match((await d.lxc(["storage", "create", "px", "zfs"], { allowFail: true })).stderr, /Storage driver "zfs" is not available here/);
  assert.match((await d.lxc(["storage", "create", "bad/name", "dir"], { allowFail: true })).stderr, /Invalid storage pool name/);
  assert.match((await d.lxc(["storage", "create", "px", "dir", "colour=red"], { allowFail: true })).stderr, /Unknown storage pool config key "colour"/);
  assert.match((await d.lxc(["storage", "volume", "create", "default", "v", "size=1GiB"], { allowFail: true })).stderr, /has no quotas/);
  await d.lxc(["init", "bb", "c1"]);
  const missing = await d.lxc(["config", "device", "add", "c1", "d", "disk", "pool=default", "source=nosuch", "path=/x"], { allowFail: true });
  assert.match(missing.stderr, /storage volume "nosuch" not found in pool "default"/);
  assert.deepEqual(await d.client.get("/1.0/storage-pools"), ["/1.0/storage-pools/default"], "nothing half made");
});
