import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { Operation } from "../../src/api/operation.js";
import type { Profile } from "../../src/api/profile.js";
import type { Server } from "../../src/api/server.js";
import type { StoragePool, StorageVolume } from "../../src/cli/storage-types.js";
import { cliDaemonForFile } from "../helpers/cli-daemon.js";

// `lodge storage …` and `lodge storage volume …` against a real lodged: dir pools on temporary
// sources, a btrfs pool on a loop file when the server offers btrfs, custom volumes attached to
// a real container and written to from inside it. These need the daemon's /1.0/storage-pools.
// One daemon for the file; each test removes its instances, volumes and pools, even when it fails.
const cli = cliDaemonForFile();
const { lodge, ok } = cli;

const suffix = () => randomBytes(2).toString("hex");

/**
 * Clean-ups of a test, run newest first when it ends (node:test runs t.after hooks in the order
 * they were added): an instance goes before the volume it holds, a volume before its pool.
 */
const cleanups = new WeakMap<TestContext, (() => Promise<unknown>)[]>();
function later(t: TestContext, fn: () => Promise<unknown>): void {
  let list = cleanups.get(t);
  if (!list) {
    const fns: (() => Promise<unknown>)[] = [];
    cleanups.set(t, fns);
    list = fns;
    t.after(async () => {
      for (const f of fns.reverse()) await f().catch(() => {});
    });
  }
  list.push(fn);
}

async function stopAndDelete(name: string): Promise<void> {
  const c = cli.d.client;
  await c.wait(await c.put<Operation>(`/1.0/instances/${name}/state`, { action: "stop", force: true })).catch(() => {});
  await c.wait(await c.delete<Operation>(`/1.0/instances/${name}`)).catch(() => {});
}

/** Deletes a pool with its custom volumes (snapshots first), after what uses them is gone. */
async function removePool(name: string): Promise<void> {
  const c = cli.d.client;
  const vols = (await c.get<StorageVolume[] | null>(`/1.0/storage-pools/${name}/volumes?recursion=1`).catch(() => null)) ?? [];
  const custom = vols.filter((v) => v.type === "custom");
  for (const v of custom.filter((v) => v.name.includes("/"))) {
    const [vol, snap] = v.name.split("/");
    const r = await c.raw("DELETE", `/1.0/storage-pools/${name}/volumes/custom/${vol}/snapshots/${snap}`).catch(() => undefined);
    if (r?.body.type === "async") await c.wait(r.body.metadata as Operation).catch(() => {});
  }
  for (const v of custom.filter((v) => !v.name.includes("/"))) await c.raw("DELETE", `/1.0/storage-pools/${name}/volumes/custom/${v.name}`).catch(() => {});
  await c.raw("DELETE", `/1.0/storage-pools/${name}`).catch(() => {});
}

/** A dir pool on a fresh temporary source, removed (with its volumes) when the test ends. */
async function dirPool(t: TestContext, prefix = "sp"): Promise<{ name: string; source: string }> {
  const name = `${prefix}${suffix()}`;
  const source = await mkdtemp(join(tmpdir(), "lodge-pool-"));
  later(t, async () => {
    await removePool(name);
    await rm(source, { recursive: true, force: true });
  });
  await ok(["storage", "create", name, "dir", `source=${source}`]);
  return { name, source };
}

/** A busybox container, started, removed when the test ends (before the pools made earlier). */
async function container(t: TestContext): Promise<string> {
  const name = `c${suffix()}`;
  later(t, () => stopAndDelete(name));
  await ok(["launch", "bb", name]);
  return name;
}

const sh = (c: string, script: string) => lodge(["exec", c, "--", "sh", "-c", script]);
const pool = (name: string) => cli.d.client.get<StoragePool>(`/1.0/storage-pools/${name}`);
const volume = (p: string, v: string) => cli.d.client.get<StorageVolume>(`/1.0/storage-pools/${p}/volumes/custom/${v}`);

async function offers(driver: string): Promise<boolean> {
  const server = await cli.d.client.get<Server>("/1.0");
  return (server.environment.storage_supported_drivers ?? []).some((d) => d.Name === driver);
}

test("storage create, list, show, get, set, unset, edit, info and delete of a dir pool", async (t) => {
  const { name, source } = await dirPool(t);
  const made = await pool(name);
  assert.equal(made.driver, "dir");
  assert.equal(made.config.source, source);

  const csv = (await ok(["storage", "list", "--format", "csv"])).stdout;
  assert.ok(csv.split("\n").includes(`${name},dir,${source},,0,CREATED`), csv);
  assert.match((await ok(["storage", "list"])).stdout, /\| NAME +\| DRIVER \| SOURCE +\| DESCRIPTION +\| USED BY \| STATE +\|/);
  assert.deepEqual(JSON.parse((await ok(["storage", "list", "-f", "json"])).stdout).find((p: StoragePool) => p.name === name).config, made.config);

  const shown = parseYaml((await ok(["storage", "show", name])).stdout) as StoragePool;
  assert.equal(shown.name, name);
  assert.deepEqual(shown.config, made.config);
  assert.equal((await ok(["storage", "get", name, "source"])).stdout, `${source}\n`);

  await ok(["storage", "set", name, "user.role=test", "user.other=x"]);
  await ok(["storage", "set", name, "user.single", "y"]);
  assert.equal((await ok(["storage", "get", name, "user.role"])).stdout, "test\n");
  await ok(["storage", "unset", name, "user.other"]);
  assert.deepEqual((await pool(name)).config, { ...made.config, "user.role": "test", "user.single": "y" });
  const missing = await lodge(["storage", "unset", name, "user.other"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Config key "user.other" is not set on storage pool/);
  const fixed = await lodge(["storage", "set", name, `source=${source}-elsewhere`]);
  assert.equal(fixed.code, 1, "a pool's source is fixed once it exists");

  // edit from stdin takes what show printed; read-only fields are ignored.
  await ok(["storage", "edit", name], { input: (await ok(["storage", "show", name])).stdout.replace(/^description: .*$/m, "description: Edited") });
  assert.equal((await pool(name)).description, "Edited");
  const badEdit = await lodge(["storage", "edit", name], { input: "drivers: x\n" });
  assert.equal(badEdit.code, 2);
  assert.match(badEdit.stderr, /"drivers" cannot be edited/);

  const info = parseYaml((await ok(["storage", "info", name])).stdout) as { info: Record<string, string>; "used by": object };
  assert.equal(info.info.name, name);
  assert.equal(info.info.driver, "dir");
  assert.equal(info.info.description, "Edited");
  assert.match(info.info["total space"]!, /^\d+\.\d\d[KMGTPE]iB$/);
  assert.match(info.info["space used"]!, /^\d+(\.\d\d[KMGTPE]iB|B)$/);
  assert.deepEqual(info["used by"], {});
  const bytes = parseYaml((await ok(["storage", "info", name, "--bytes"])).stdout) as { info: Record<string, string> };
  assert.match(bytes.info["total space"]!, /^\d+$/);
  const resources = parseYaml((await ok(["storage", "show", name, "--resources"])).stdout) as { space: { total: number } };
  assert.equal(String(resources.space.total), bytes.info["total space"]);

  assert.equal((await ok(["storage", "delete", name])).stdout, `Storage pool ${name} deleted\n`);
  assert.equal((await cli.d.client.raw("GET", `/1.0/storage-pools/${name}`)).status, 404);
  const again = await lodge(["storage", "delete", name]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /not found/i);
  const noDriver = await lodge(["storage", "create", `x${suffix()}`, "nosuchdriver"]);
  assert.equal(noDriver.code, 1);
  assert.match(noDriver.stderr, /nosuchdriver/);
});

test("a btrfs pool on a loop file: create with size=300MiB, info, a volume on it, delete", async (t) => {
  if (!(await offers("btrfs"))) return t.skip("the server does not offer btrfs");
  const name = `bt${suffix()}`;
  later(t, () => removePool(name));
  assert.equal((await ok(["storage", "create", name, "btrfs", "size=300MiB"])).stdout, `Storage pool ${name} created\n`);
  assert.equal((await pool(name)).driver, "btrfs");
  const bytes = parseYaml((await ok(["storage", "info", name, "--bytes"])).stdout) as { info: Record<string, string> };
  const total = Number(bytes.info["total space"]);
  assert.ok(total > 200 * 2 ** 20 && total <= 300 * 2 ** 20, `total space ${total} is about 300MiB`);
  await ok(["storage", "volume", "create", name, "v1"]);
  assert.match((await ok(["storage", "volume", "list", name, "-f", "csv"])).stdout, /^custom,v1,,filesystem,0$/m);
  await ok(["storage", "volume", "snapshot", name, "v1", "s0"]);
  await ok(["storage", "volume", "delete", name, "v1/s0"]);
  await ok(["storage", "volume", "delete", name, "v1"]);
  await ok(["storage", "delete", name]);
  assert.equal((await cli.d.client.raw("GET", `/1.0/storage-pools/${name}`)).status, 404);
});

test("a custom volume attached to a container keeps its data across detach and attach; an attached volume and a pool in use cannot be deleted", async (t) => {
  const { name: p } = await dirPool(t);
  const c = await container(t);
  assert.equal((await ok(["storage", "volume", "create", p, "data", "--description", "Data"])).stdout, "Storage volume data created\n");
  assert.equal((await volume(p, "data")).description, "Data");
  assert.equal((await volume(p, "data")).content_type, "filesystem");

  assert.equal((await ok(["storage", "volume", "attach", p, "data", c, "/mnt/data"])).stdout, `Device data added to ${c}\n`);
  const dev = (await cli.d.client.get<{ devices: Record<string, Record<string, string>> }>(`/1.0/instances/${c}`)).devices.data;
  assert.deepEqual(dev, { type: "disk", pool: p, source: "data", path: "/mnt/data" });
  assert.equal((await sh(c, "echo kept > /mnt/data/f && cat /mnt/data/f")).stdout, "kept\n");

  // In use: the volume's used_by names the instance, and neither it nor its pool can go.
  assert.deepEqual((await volume(p, "data")).used_by, [`/1.0/instances/${c}`]);
  assert.match((await ok(["storage", "volume", "list", p, "-f", "csv"])).stdout, /^custom,data,Data,filesystem,1$/m);
  const delAttached = await lodge(["storage", "volume", "delete", p, "data"]);
  assert.equal(delAttached.code, 1, "an attached volume cannot be deleted");
  assert.match(delAttached.stderr, /use/i);
  const delPool = await lodge(["storage", "delete", p]);
  assert.equal(delPool.code, 1, "a pool in use cannot be deleted");
  assert.match(delPool.stderr, /use/i);
  assert.ok(parseYaml((await ok(["storage", "info", p])).stdout)["used by"].volumes.includes("data"));
  const twice = await lodge(["storage", "volume", "attach", p, "data", c, "/mnt/again"]);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /Device already exists: data/);

  assert.equal((await ok(["storage", "volume", "detach", p, "data", c])).stdout, `Device data removed from ${c}\n`);
  assert.notEqual((await sh(c, "test -e /mnt/data/f")).code, 0, "detached: the file is no longer there");
  const noDevice = await lodge(["storage", "volume", "detach", p, "data", c]);
  assert.equal(noDevice.code, 2);
  assert.match(noDevice.stderr, /No device found for this storage volume/);

  // Attached again under another device name and path: the data is there.
  await ok(["storage", "volume", "attach", p, "data", c, "vol", "/srv"]);
  assert.equal((await sh(c, "cat /srv/f")).stdout, "kept\n");
  await ok(["storage", "volume", "detach", p, "data", c, "vol"]);

  // Through a profile too.
  const prof = `p${suffix()}`;
  later(t, () => cli.d.client.delete(`/1.0/profiles/${prof}`));
  await ok(["profile", "create", prof]);
  await ok(["storage", "volume", "attach-profile", p, "data", prof, "/mnt/p"]);
  assert.deepEqual((await cli.d.client.get<Profile>(`/1.0/profiles/${prof}`)).devices.data, { type: "disk", pool: p, source: "data", path: "/mnt/p" });
  await ok(["storage", "volume", "detach-profile", p, "data", prof]);
  assert.deepEqual((await cli.d.client.get<Profile>(`/1.0/profiles/${prof}`)).devices, {});

  assert.equal((await ok(["storage", "volume", "delete", p, "data"])).stdout, "Storage volume data deleted\n");
  assert.equal((await cli.d.client.raw("GET", `/1.0/storage-pools/${p}/volumes/custom/data`)).status, 404);
});

test("volume show, get, set, unset, edit, rename, info and list in every format", async (t) => {
  const { name: p } = await dirPool(t);
  await ok(["storage", "volume", "create", p, "v1", "user.role=db"]);
  assert.equal((await ok(["storage", "volume", "get", p, "v1", "user.role"])).stdout, "db\n");
  await ok(["storage", "volume", "set", p, "v1", "user.a=1", "user.b=2"]);
  await ok(["storage", "volume", "unset", p, "v1", "user.a"]);
  assert.deepEqual((await volume(p, "v1")).config, { "user.role": "db", "user.b": "2" });
  const shown = parseYaml((await ok(["storage", "volume", "show", p, "v1"])).stdout) as StorageVolume;
  assert.equal(shown.name, "v1");
  assert.equal(shown.type, "custom");
  assert.deepEqual(JSON.parse((await ok(["storage", "volume", "show", p, "custom/v1", "--format", "json"])).stdout).config, shown.config);
  await ok(["storage", "volume", "edit", p, "v1"], { input: "description: Edited\nconfig:\n  user.role: web\n" });
  assert.equal((await volume(p, "v1")).description, "Edited");
  assert.deepEqual((await volume(p, "v1")).config, { "user.role": "web" });

  assert.equal((await ok(["storage", "volume", "rename", p, "v1", "v2"])).stdout, 'Renamed storage volume from "v1" to "v2"\n');
  assert.equal((await cli.d.client.raw("GET", `/1.0/storage-pools/${p}/volumes/custom/v1`)).status, 404);
  assert.equal((await volume(p, "v2")).description, "Edited");

  const info = (await ok(["storage", "volume", "info", p, "v2"])).stdout;
  assert.match(info, /^Name: v2\nDescription: Edited\nType: custom\nContent type: filesystem\n/);
  const table = (await ok(["storage", "volume", "list", p])).stdout;
  assert.match(table, /\| TYPE +\| NAME \| DESCRIPTION \| CONTENT-TYPE \| USED BY \|/);
  assert.match(table, /\| custom +\| v2 +\| Edited +\| filesystem +\| 0 +\|/);
  assert.deepEqual((JSON.parse((await ok(["storage", "volume", "list", p, "-f", "json"])).stdout) as StorageVolume[]).map((v) => v.name), ["v2"]);
  // USAGE is blank where the server cannot measure a volume (dir without project quotas).
  assert.match((await ok(["storage", "volume", "list", p, "-c", "nU", "-f", "csv"])).stdout, /^v2,(\d+(\.\d\d[KMGT]iB|B))?$/m);
  assert.equal((await ok(["storage", "volume", "list", p, "type=container", "-f", "csv"])).stdout, "");
  const block = await lodge(["storage", "volume", "create", p, "blk", "--type", "block", "size=10MiB"]);
  if (block.code === 0) assert.equal((await volume(p, "blk")).content_type, "block");
  else {
    assert.equal(block.code, 1);
    assert.match(block.stderr, /block/i, "a refused block volume says why");
  }
});

test("volume snapshot then restore: a file written after the snapshot is gone", async (t) => {
  const { name: p } = await dirPool(t);
  const c = await container(t);
  await ok(["storage", "volume", "create", p, "data"]);
  await ok(["storage", "volume", "attach", p, "data", c, "/data"]);
  await sh(c, "echo before > /data/a");
  await ok(["storage", "volume", "snapshot", p, "data", "snap0"]);
  await sh(c, "echo after > /data/b; echo changed > /data/a");
  await ok(["storage", "volume", "snapshot", p, "data"]);

  const list = (await ok(["storage", "volume", "list", p, "-f", "csv"])).stdout.trim().split("\n");
  assert.equal(list[0], "custom,data,,filesystem,1");
  assert.equal(list[1], "custom (snapshot),data/snap0,,filesystem,0");
  assert.equal(list.length, 3, "the unnamed snapshot got a name from the server");
  assert.match((await ok(["storage", "volume", "info", p, "data"])).stdout, /\nSnapshots:\n(.*\n){3}\| snap0 +\|/);
  assert.equal((parseYaml((await ok(["storage", "volume", "show", p, "data/snap0"])).stdout) as { name: string }).name.split("/").pop(), "snap0");
  const readOnly = await lodge(["storage", "volume", "set", p, "data/snap0", "user.x=1"]);
  assert.equal(readOnly.code, 2);
  assert.match(readOnly.stderr, /Snapshots are read-only/);

  await ok(["storage", "volume", "detach", p, "data", c]);
  await ok(["storage", "volume", "restore", p, "data", "snap0"]);
  await ok(["storage", "volume", "attach", p, "data", c, "/data"]);
  assert.equal((await sh(c, "cat /data/a")).stdout, "before\n");
  assert.notEqual((await sh(c, "test -e /data/b")).code, 0, "the file written after the snapshot is gone");

  assert.equal((await ok(["storage", "volume", "rename", p, "data/snap0", "data/first"])).stdout, 'Renamed storage volume from "data/snap0" to "data/first"\n');
  const wrongParent = await lodge(["storage", "volume", "rename", p, "data/first", "other/x"]);
  assert.equal(wrongParent.code, 2);
  assert.match(wrongParent.stderr, /parent volume must be the same as source/);
  await ok(["storage", "volume", "snapshot", p, "data", "first", "--reuse"]);
  assert.equal((await ok(["storage", "volume", "delete", p, "data/first"])).stdout, "Storage volume data/first deleted\n");
  assert.equal((await cli.d.client.raw("GET", `/1.0/storage-pools/${p}/volumes/custom/data/snapshots/first`)).status, 404);
});

test("volume copy and move between pools, and from a snapshot; the data goes along", async (t) => {
  const { name: a } = await dirPool(t, "sa");
  const { name: b } = await dirPool(t, "sb");
  const c = await container(t);
  await ok(["storage", "volume", "create", a, "src", "user.role=orig"]);
  await ok(["storage", "volume", "attach", a, "src", c, "/src"]);
  await sh(c, "echo one > /src/f");
  await ok(["storage", "volume", "snapshot", a, "src", "s0"]);
  await sh(c, "echo two > /src/f");
  await ok(["storage", "volume", "detach", a, "src", c]);

  assert.equal((await ok(["storage", "volume", "copy", `${a}/src`, `${b}/copy`])).stdout, "Storage volume copied successfully!\n");
  assert.equal((await volume(b, "copy")).config["user.role"], "orig");
  await ok(["storage", "volume", "copy", `${a}/src/s0`, `${a}/fromsnap`]);
  await ok(["storage", "volume", "copy", `${a}/src`, `${a}/only`, "--volume-only"]);
  assert.equal((await cli.d.client.get<string[]>(`/1.0/storage-pools/${a}/volumes/custom/only/snapshots`)).length, 0);

  assert.equal((await ok(["storage", "volume", "move", `${a}/src`, `${b}/moved`])).stdout, "Storage volume moved successfully!\n");
  assert.equal((await cli.d.client.raw("GET", `/1.0/storage-pools/${a}/volumes/custom/src`)).status, 404, "moved away");
  await ok(["storage", "volume", "move", `${b}/copy`, `${b}/copy2`]);

  for (const [pool, vol, want] of [[b, "copy2", "two"], [a, "fromsnap", "one"], [b, "moved", "two"]] as const) {
    await ok(["storage", "volume", "attach", pool, vol, c, "chk", "/chk"]);
    assert.equal((await sh(c, "cat /chk/f")).stdout, `${want}\n`, `${pool}/${vol}`);
    await ok(["storage", "volume", "detach", pool, vol, c, "chk"]);
  }
  // A copy is its own: writing to it leaves the original alone.
  await ok(["storage", "volume", "attach", b, "copy2", c, "/copy"]);
  await ok(["storage", "volume", "attach", b, "moved", c, "/moved"]);
  await sh(c, "echo three > /copy/f");
  assert.equal((await sh(c, "cat /moved/f")).stdout, "two\n");

  const noPool = await lodge(["storage", "volume", "copy", "src", `${b}/x`]);
  assert.equal(noPool.code, 2);
  assert.match(noPool.stderr, /No storage pool for source volume specified/);
  const missing = await lodge(["storage", "volume", "copy", `${a}/nope`, `${b}/x`]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /not found/i);
});

test("launch -s puts an instance on a pool: its volume is listed and shown, and the pool cannot go while it is there", async (t) => {
  const { name: p } = await dirPool(t);
  const c = `c${suffix()}`;
  later(t, () => stopAndDelete(c));
  await ok(["launch", "bb", c, "-s", p]);
  assert.deepEqual((await cli.d.client.get<{ expanded_devices: Record<string, Record<string, string>> }>(`/1.0/instances/${c}`)).expanded_devices.root, { type: "disk", path: "/", pool: p });
  assert.match((await ok(["storage", "volume", "list", p, "-f", "csv"])).stdout, new RegExp(`^container,${c},,filesystem,1$`, "m"));
  assert.equal((parseYaml((await ok(["storage", "volume", "show", p, `container/${c}`])).stdout) as StorageVolume).type, "container");
  assert.match((await ok(["storage", "volume", "info", p, `container/${c}`])).stdout, new RegExp(`^Name: ${c}\nType: container\n`));
  assert.deepEqual(parseYaml((await ok(["storage", "info", p])).stdout)["used by"].instances, [c]);
  const inUse = await lodge(["storage", "delete", p]);
  assert.equal(inUse.code, 1, "a pool with an instance on it cannot be deleted");
  assert.match(inUse.stderr, /use/i);
  await stopAndDelete(c);
  await ok(["storage", "delete", p]);
});

test("storage verbs refuse bad words before asking the server", async () => {
  const refused: [string[], RegExp][] = [
    [["storage", "volume", "attach", "default", "container/c1", "c1", "/x"], /Only "custom" volumes can be attached/],
    [["storage", "volume", "create", "default", "v/s"], /to make a snapshot, use lodge storage volume snapshot/],
    [["storage", "volume", "create", "default", "v", "--type", "raw"], /Invalid --type "raw"/],
    [["storage", "volume", "snapshot", "default", "container/c1"], /Only "custom" volumes can be snapshotted/],
    [["storage", "volume", "info", "default", "v/s"], /Only instance or custom volumes are supported/],
    [["storage", "volume", "list", "default", "-c", "nL"], /Can't specify column L when not clustered/],
    [["storage", "volume", "move", "a/v", "b/v/s"], /the target is POOL\/VOLUME, not a snapshot/],
    [["storage", "create", "p", "dir", "novalue"], /Invalid storage pool setting "novalue"/],
  ];
  for (const [args, re] of refused) {
    const r = await lodge(args);
    assert.equal(r.code, 2, `lodge ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});
