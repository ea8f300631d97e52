import test from "node:test";
import assert from "node:assert/strict";
import { createPoolRequest } from "../../src/cli/storage.js";
import { createVolumeRequest } from "../../src/cli/storage-volume.js";
import { attachWords, diskFor, diskToDetach } from "../../src/cli/storage-volume-attach.js";
import { copyRequest, moveRequest } from "../../src/cli/storage-volume-copy.js";
import { parsePoolPut, parsePoolVolume, parseSnapshotPut, parseVolumeArg, parseVolumePut, volumeLabel, volumeUrl } from "../../src/cli/storage-ref.js";

test("volume words are read as lxc reads them: custom unless a type prefix, VOLUME/SNAPSHOT", () => {
  assert.deepEqual(parseVolumeArg("p", "data"), { pool: "p", type: "custom", name: "data" });
  assert.deepEqual(parseVolumeArg("p", "custom/data"), { pool: "p", type: "custom", name: "data" });
  assert.deepEqual(parseVolumeArg("p", "data/snap0"), { pool: "p", type: "custom", name: "data", snapshot: "snap0" });
  assert.deepEqual(parseVolumeArg("p", "custom/data/snap0"), { pool: "p", type: "custom", name: "data", snapshot: "snap0" });
  assert.deepEqual(parseVolumeArg("p", "container/c1"), { pool: "p", type: "container", name: "c1" });
  assert.deepEqual(parseVolumeArg("p", "virtual-machine/v1"), { pool: "p", type: "virtual-machine", name: "v1" });
  assert.throws(() => parseVolumeArg("p", "a/b/c"), /Invalid snapshot name in "a\/b\/c"/);
  assert.throws(() => parseVolumeArg("p", "data/"), /Invalid snapshot name in "data\/": it is empty/);
  assert.throws(() => parseVolumeArg("p", ""), /Invalid volume name/);
  assert.throws(() => parseVolumeArg("", "data"), /Missing pool name/);
  assert.throws(() => parseVolumeArg("p", "data/s", { snapshots: false }), /"data\/s" names a snapshot: this verb takes a volume/);
});

test("URLs and labels of volumes and snapshots, names escaped", () => {
  assert.equal(volumeUrl({ pool: "p 1", type: "custom", name: "data" }), "/1.0/storage-pools/p%201/volumes/custom/data");
  assert.equal(volumeUrl({ pool: "p", type: "custom", name: "data", snapshot: "s0" }, "/x"), "/1.0/storage-pools/p/volumes/custom/data/snapshots/s0/x");
  assert.equal(volumeUrl({ pool: "p", type: "container", name: "c1" }, "/state"), "/1.0/storage-pools/p/volumes/container/c1/state");
  assert.equal(volumeLabel({ type: "custom", name: "data", snapshot: "s0" }), "data/s0");
  assert.equal(volumeLabel({ type: "container", name: "c1" }), "container/c1");
});

test("copy and move take POOL/VOLUME[/SNAPSHOT] words", () => {
  assert.deepEqual(parsePoolVolume("p1/data", "source"), { pool: "p1", type: "custom", name: "data" });
  assert.deepEqual(parsePoolVolume("p1/data/s0", "source"), { pool: "p1", type: "custom", name: "data", snapshot: "s0" });
  assert.throws(() => parsePoolVolume("data", "source"), /No storage pool for source volume specified: expected POOL\/VOLUME, got "data"/);
  assert.throws(() => parsePoolVolume("data", "target"), /No storage pool for target volume specified/);
  assert.throws(() => parsePoolVolume("p2/data/s0", "target"), /the target is POOL\/VOLUME, not a snapshot/);
  assert.throws(() => parsePoolVolume("p1/container/c1", "source"), /Only custom volumes can be copied or moved/);
  assert.throws(() => parsePoolVolume("/data", "source"), /Invalid pool name/);
});

test("create requests: pools with their driver and keys, custom volumes with their content type", () => {
  assert.deepEqual(createPoolRequest("fast", "btrfs", ["size=300MiB", "btrfs.mount_options=compress=zstd"]), {
    name: "fast",
    driver: "btrfs",
    description: "",
    config: { size: "300MiB", "btrfs.mount_options": "compress=zstd" },
  });
  assert.equal(createPoolRequest("p", "dir", [], "Mine").description, "Mine");
  assert.throws(() => createPoolRequest("p", "dir", ["source"]), /Invalid storage pool setting "source": expected KEY=VALUE/);
  assert.throws(() => createPoolRequest("p", "size=1GiB", []), /Invalid storage driver "size=1GiB"/);

  const v = parseVolumeArg("p", "data");
  assert.deepEqual(createVolumeRequest(v, ["size=1GiB"], {}), { name: "data", type: "custom", content_type: "filesystem", description: "", config: { size: "1GiB" } });
  assert.equal(createVolumeRequest(v, [], { type: "block" }).content_type, "block");
  assert.throws(() => createVolumeRequest(v, [], { type: "raw" }), /Invalid --type "raw": filesystem or block/);
  assert.throws(() => createVolumeRequest(parseVolumeArg("p", "container/c1"), [], {}), /Only custom volumes can be created/);
  assert.throws(() => createVolumeRequest(parseVolumeArg("p", "data/s0"), [], {}), /use lodge storage volume snapshot p data s0/);
});

test("attach: [DEVICE] PATH after the instance, the device named after the volume by default; a block volume takes no path", () => {
  assert.deepEqual(attachWords("data", ["/mnt/data"], false), { device: "data", path: "/mnt/data" });
  assert.deepEqual(attachWords("data", ["disk1", "/mnt/data"], false), { device: "disk1", path: "/mnt/data" });
  assert.deepEqual(attachWords("blk", [], true), { device: "blk" });
  assert.deepEqual(attachWords("blk", ["disk1"], true), { device: "disk1" });
  assert.throws(() => attachWords("data", [], false), /A path is needed for filesystem volume "data"/);
  assert.throws(() => attachWords("data", ["mnt"], false), /Invalid path "mnt"/);
  assert.throws(() => attachWords("blk", ["d", "/mnt"], true), /is a block volume: it takes no path/);
  assert.throws(() => attachWords("data", ["a", "b", "c"], false), /Too many arguments/);
  assert.deepEqual(diskFor(parseVolumeArg("p", "data"), "/mnt"), { type: "disk", pool: "p", source: "data", path: "/mnt" });
  assert.deepEqual(diskFor(parseVolumeArg("p", "blk")), { type: "disk", pool: "p", source: "blk" });
});

test("detach finds the volume's disk, or the one named, and says why not", () => {
  const v = parseVolumeArg("p", "data");
  const devices = {
    root: { type: "disk", path: "/", pool: "p" },
    data: { type: "disk", pool: "p", source: "data", path: "/mnt" },
    other: { type: "disk", pool: "q", source: "data", path: "/q" },
  };
  assert.equal(diskToDetach(devices, v, 'on instance "c1"'), "data");
  assert.equal(diskToDetach(devices, v, 'on instance "c1"', "other"), "other");
  assert.throws(() => diskToDetach(devices, v, 'on instance "c1"', "nope"), /The specified device doesn't exist: no device "nope" on instance "c1"/);
  const twice = { ...devices, again: { type: "disk", pool: "p", source: "data", path: "/again" } };
  assert.throws(() => diskToDetach(twice, v, 'on instance "c1"'), /More than one device matches, specify the device name \(again, data\)/);
  assert.throws(() => diskToDetach({ root: devices.root }, v, 'on instance "c1"'), /No device found for this storage volume: no disk on instance "c1" uses volume "data" of pool "p"/);
  assert.throws(() => diskToDetach({}, v, 'on instance "c1"', undefined, { vol: devices.data }), /Device "vol" comes from a profile/);
  assert.throws(() => diskToDetach({}, v, 'on instance "c1"', "vol", { vol: devices.data }), /Device "vol" comes from a profile/);
});

test("copy and move requests as LXD's client sends them", () => {
  const src = parsePoolVolume("p1/data", "source");
  const dst = parsePoolVolume("p2/data2", "target");
  assert.deepEqual(copyRequest(src, dst, { description: "d", config: { size: "1GiB" }, content_type: "filesystem" }), {
    name: "data2",
    type: "custom",
    description: "d",
    config: { size: "1GiB" },
    content_type: "filesystem",
    source: { type: "copy", name: "data", pool: "p1" },
  });
  const fromSnap = copyRequest(parsePoolVolume("p1/data/s0", "source"), dst, {}, { volumeOnly: true, refresh: true });
  assert.deepEqual(fromSnap.source, { type: "copy", name: "data/s0", pool: "p1", volume_only: true, refresh: true });
  assert.deepEqual(moveRequest(src, dst), { name: "data2", pool: "p2" });
  assert.deepEqual(moveRequest(src, parsePoolVolume("p1/renamed", "target")), { name: "renamed" });
  assert.throws(() => moveRequest(src, parsePoolVolume("p1/data", "target")), /"p1\/data" is where the volume already is/);
});

test("edited YAML: read-only fields ignored, unknown ones refused by name, values as strings", async () => {
  const shown = `name: default
driver: dir
description: Mine
status: Created
used_by: []
locations: [none]
config:
  source: /srv/p
  volume.size: 10
`;
  assert.deepEqual(await parsePoolPut(shown), { description: "Mine", config: { source: "/srv/p", "volume.size": "10" } });
  await assert.rejects(parsePoolPut("drivers: x\n"), /Invalid storage pool YAML: "drivers" cannot be edited/);
  // What is left out stays as it is (a pool's source cannot change); an empty config clears.
  assert.deepEqual(await parsePoolPut("description: Only this\n"), { description: "Only this" });
  assert.deepEqual(await parsePoolPut("config: {}\n"), { config: {} });
  assert.deepEqual(await parseVolumePut("name: data\ntype: custom\ncontent_type: filesystem\nused_by: null\nconfig: {size: 1GiB}\n"), { config: { size: "1GiB" } });
  await assert.rejects(parseVolumePut("pool: x\n"), /"pool" cannot be edited/);
  assert.deepEqual(await parseSnapshotPut("name: s0\ndescription: before the upgrade\nexpires_at: 2030-01-01T00:00:00Z\n"), { description: "before the upgrade", expires_at: "2030-01-01T00:00:00Z" });
});

test("launch -s POOL puts the root disk on that pool, over a -d root override", async () => {
  const { createRequest } = await import("../../src/cli/instance-create.js");
  const none = {} as Parameters<typeof createRequest>[0];
  const opts = { config: [], device: ["root,size=1GiB"], profile: [], storage: "fast" };
  const body = await createRequest(none, undefined, "c1", opts);
  assert.deepEqual(body.devices, { root: { type: "disk", path: "/", size: "1GiB", pool: "fast" } });
  assert.deepEqual((await createRequest(none, undefined, "c1", { config: [], device: [], profile: [] })).devices, {});
});
