import test from "node:test";
import assert from "node:assert/strict";
import { renderList } from "../../src/cli/output.js";
import {
  iecByteSize,
  matchVolume,
  parseVolumeColumns,
  parseVolumeFilters,
  POOL_COLUMNS,
  poolInfo,
  sortedPools,
  sortedVolumes,
  usedByGroups,
  volumeInfo,
  DEFAULT_VOLUME_COLUMNS,
} from "../../src/cli/storage-columns.js";
import type { StoragePool, StorageVolume } from "../../src/cli/storage-types.js";

const pool = (name: string, over: Partial<StoragePool> = {}): StoragePool => ({ name, driver: "dir", description: "", config: {}, status: "Created", used_by: [], ...over });
const vol = (name: string, over: Partial<StorageVolume> = {}): StorageVolume => ({ name, type: "custom", description: "", config: {}, content_type: "filesystem", used_by: [], ...over });

test("storage list: NAME DRIVER SOURCE DESCRIPTION USED BY STATE, sorted naturally", async () => {
  const pools = sortedPools([
    pool("p10", { driver: "btrfs", config: { source: "/var/lib/lodge/disks/p10.img" }, used_by: null }),
    pool("p2", { description: "Two", used_by: ["/1.0/profiles/default", "/1.0/instances/c1"] }),
  ]);
  assert.equal(
    await renderList(POOL_COLUMNS, pools, "table"),
    `+------+--------+------------------------------+-------------+---------+---------+
| NAME | DRIVER | SOURCE                       | DESCRIPTION | USED BY | STATE   |
+------+--------+------------------------------+-------------+---------+---------+
| p2   | dir    |                              | Two         | 2       | CREATED |
+------+--------+------------------------------+-------------+---------+---------+
| p10  | btrfs  | /var/lib/lodge/disks/p10.img |             | 0       | CREATED |
+------+--------+------------------------------+-------------+---------+---------+
`,
  );
  assert.equal(await renderList(POOL_COLUMNS, pools, "csv"), "p2,dir,,Two,2,CREATED\np10,btrfs,/var/lib/lodge/disks/p10.img,,0,CREATED\n");
});

test("sizes in binary units with two decimals, as lxc prints them", () => {
  assert.equal(iecByteSize(0), "0B");
  assert.equal(iecByteSize(1023), "1023B");
  assert.equal(iecByteSize(1024), "1.00KiB");
  assert.equal(iecByteSize(300 * 1024 ** 2), "300.00MiB");
  assert.equal(iecByteSize(1.5 * 1024 ** 3), "1.50GiB");
});

test("storage volume list: lxc's default columns, -c shorthands and its errors", () => {
  assert.deepEqual(parseVolumeColumns(DEFAULT_VOLUME_COLUMNS).columns.map((c) => c.header), ["TYPE", "NAME", "DESCRIPTION", "CONTENT-TYPE", "USED BY"]);
  const u = parseVolumeColumns("n,tU");
  assert.deepEqual(u.columns.map((c) => c.header), ["NAME", "TYPE", "USAGE"]);
  assert.equal(u.needsState, true);
  assert.equal(parseVolumeColumns("nt").needsState, false);
  assert.throws(() => parseVolumeColumns("nL"), /Can't specify column L when not clustered/);
  assert.throws(() => parseVolumeColumns("n,,t"), /Empty column entry/);
  assert.throws(() => parseVolumeColumns("nx"), /Unknown column shorthand char 'x' in 'nx'/);

  const { columns } = parseVolumeColumns("tnducU");
  const row = (v: StorageVolume, used?: number) => columns.map((c) => c.value({ volume: v, state: used === undefined ? undefined : { usage: { used } } }));
  assert.deepEqual(row(vol("data", { description: "D", used_by: ["/1.0/instances/c1"] }), 2048), ["custom", "data", "D", "1", "filesystem", "2.00KiB"]);
  assert.deepEqual(row(vol("data/s0", { content_type: undefined, used_by: null })), ["custom (snapshot)", "data/s0", "", "0", "filesystem", ""]);
});

test("volumes sort by type, each volume's snapshots after it, names naturally", () => {
  const sorted = sortedVolumes([vol("d10"), vol("d2/s1"), vol("c1", { type: "container" }), vol("d2"), vol("abc", { type: "image" }), vol("d2/s0")]);
  assert.deepEqual(sorted.map((v) => `${v.type}:${v.name}`), ["container:c1", "custom:d2", "custom:d2/s0", "custom:d2/s1", "custom:d10", "image:abc"]);
});

test("volume list filters are KEY=VALUE on fields and config keys", () => {
  const f = parseVolumeFilters(["type=custom", "config.block.filesystem=ext4"]);
  assert.ok(matchVolume(vol("a", { config: { "block.filesystem": "ext4" } }), f));
  assert.ok(!matchVolume(vol("a", { type: "container", config: { "block.filesystem": "ext4" } }), f));
  assert.ok(matchVolume(vol("a", { content_type: "block" }), parseVolumeFilters(["content_type=block"])));
  assert.throws(() => parseVolumeFilters(["data"]), /Invalid filter "data": expected KEY=VALUE/);
});

test("storage info: lxc's info and used-by maps, with inodes when the server counts them, --bytes", () => {
  const p = pool("fast", { driver: "btrfs", description: "Fast", used_by: ["/1.0/instances/c1", "/1.0/profiles/default", "/1.0/storage-pools/fast/volumes/custom/data", "/1.0/instances/c2?project=p1", "/1.0/images/abc"] });
  const res = { space: { used: 1.5 * 1024 ** 3, total: 300 * 1024 ** 2 * 100 }, inodes: { used: 12, total: 1000 } };
  const info = poolInfo(p, res, false);
  assert.deepEqual(info, {
    info: { description: "Fast", driver: "btrfs", "inodes used": "12", name: "fast", "space used": "1.50GiB", "total inodes": "1000", "total space": "29.30GiB" },
    "used by": { images: ["abc"], instances: ["c1", 'c2 (project "p1")'], profiles: ["default"], volumes: ["data"] },
  });
  assert.deepEqual(Object.keys(info.info), ["description", "driver", "inodes used", "name", "space used", "total inodes", "total space"], "keys sorted, as lxc's YAML");
  assert.equal(poolInfo(p, res, true).info["space used"], String(1.5 * 1024 ** 3));
  assert.deepEqual(Object.keys(poolInfo(pool("d"), { space: { used: 0, total: 10 } }, true).info), ["description", "driver", "name", "space used", "total space"]);
  assert.deepEqual(usedByGroups([]), {});
  assert.deepEqual(usedByGroups(["/1.0/storage-pools/p/volumes/custom/c1/snapshots/first", "/1.0/storage-pools/p/volumes/custom/c%201"]), { volumes: ["c1/first", "c 1"] });
});

test("storage volume info: name, type, content type, usage, and the snapshots table", () => {
  const text = volumeInfo(vol("data", { description: "Mine" }), { usage: { used: 4096, total: 1024 ** 3 } }, [
    { name: "s1", description: "", config: {}, expires_at: "2030-01-02T03:04:00Z" },
    { name: "data/s0", description: "first", config: {}, expires_at: "0001-01-01T00:00:00Z" },
  ]);
  assert.equal(
    text,
    `Name: data
Description: Mine
Type: custom
Content type: filesystem
Usage: 4.00KiB
Total: 1.00GiB

Snapshots:
+------+-------------+----------------------+
| Name | Description | Expires at           |
+------+-------------+----------------------+
| s0   | first       |                      |
+------+-------------+----------------------+
| s1   |             | 2030/01/02 03:04 UTC |
+------+-------------+----------------------+
`,
  );
  assert.equal(volumeInfo(vol("c1", { type: "container", content_type: "" }), { usage: null }, []), "Name: c1\nType: container\nContent type: filesystem\n");
});
