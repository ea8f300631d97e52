import test from "node:test";
import assert from "node:assert/strict";
import {
  allocateIdmap,
  hostPool,
  idmapConfig,
  idmapFromJson,
  idmapToJson,
  lxcIdmapLines,
  parseSubid,
  sameIdmap,
  toHost,
  toNs,
  type HostIdPool,
} from "../../src/sys/idmap.js";

const FULL = "         0          0 4294967295\n";

test("subid files: root's ranges, comments and other users skipped", () => {
  const text = "# allocations\nlxd:100000:65536\nroot:1000000:1000000000 # for containers\nroot:5:10\nbad line\nroot:x:1\n";
  assert.deepEqual(parseSubid(text), [
    { hostid: 1_000_000, range: 1_000_000_000 },
    { hostid: 5, range: 10 },
  ]);
  assert.deepEqual(parseSubid(text, "lxd"), [{ hostid: 100000, range: 65536 }]);
});

test("the host pool: root's subid entries when present", () => {
  const pool = hostPool({ subuid: "root:100000:65536\nroot:300000:200000\n", subgid: "root:400000:65536\n", uidMap: FULL, gidMap: FULL });
  assert.deepEqual(pool, { uid: { hostid: 100000, range: 65536 }, gid: { hostid: 400000, range: 65536 }, source: "subid" });
  // The first range big enough is used; small ones are skipped.
  assert.deepEqual(hostPool({ subuid: "root:10:100\nroot:200000:70000\n", subgid: "root:200000:70000\n", uidMap: FULL, gidMap: FULL }).uid, {
    hostid: 200000,
    range: 70000,
  });
});

test("the host pool: LXD's fallback (1000000 + 10^9) when root has no entries and the kernel map is full", () => {
  for (const files of [{ subuid: "", subgid: "" }, {}, { subuid: "lxd:100000:65536\n", subgid: "lxd:100000:65536\n" }]) {
    const pool = hostPool({ ...files, uidMap: FULL, gidMap: FULL });
    assert.deepEqual(pool, { uid: { hostid: 1_000_000, range: 1_000_000_000 }, gid: { hostid: 1_000_000, range: 1_000_000_000 }, source: "kernel" });
  }
});

test("the host pool: nested, a part of the parent's map above the first 100000 ids", () => {
  const map = "0 1000000 1000000000\n";
  const pool = hostPool({ uidMap: map, gidMap: map });
  assert.deepEqual(pool.uid, { hostid: 100000, range: 1_000_000_000 - 100000 });
  assert.throws(() => hostPool({ uidMap: "0 1000000 65536\n", gidMap: "0 1000000 65536\n" }), /no range of 65536 ids/);
  assert.throws(() => hostPool({ subuid: "root:100000:1000\n", subgid: "root:100000:1000\n", uidMap: FULL, gidMap: FULL }), /at least 65536/);
});

const pool: HostIdPool = { uid: { hostid: 1_000_000, range: 1_000_000 }, gid: { hostid: 1_000_000, range: 1_000_000 }, source: "subid" };

test("the shared map is the whole pool", () => {
  const a = allocateIdmap(pool, { isolated: false });
  assert.equal(a.base, 0);
  assert.deepEqual(lxcIdmapLines(a.entries), ["u 0 1000000 1000000", "g 0 1000000 1000000"]);
});

test("isolated maps: 65536 ids each, in the first free gap after the pool's first range", () => {
  const first = allocateIdmap(pool, { isolated: true }, []);
  assert.equal(first.base, 1_065_536);
  assert.deepEqual(lxcIdmapLines(first.entries), ["u 0 1065536 65536", "g 0 1065536 65536"]);
  const second = allocateIdmap(pool, { isolated: true }, [{ hostid: first.base, range: 65536 }]);
  assert.equal(second.base, 1_131_072);
  // A gap left by a deleted instance is reused.
  const gap = allocateIdmap(pool, { isolated: true }, [{ hostid: 1_131_072, range: 65536 }]);
  assert.equal(gap.base, 1_065_536);
  // A bigger map skips a gap it does not fit in.
  const big = allocateIdmap(pool, { isolated: true, size: 100_000 }, [{ hostid: 1_131_072, range: 65536 }]);
  assert.equal(big.base, 1_196_608);
  assert.throws(() => allocateIdmap(pool, { isolated: true, size: 2_000_000 }), /not enough uids/);
});

test("isolated maps: security.idmap.base places the map, within the pool only", () => {
  assert.equal(allocateIdmap(pool, { isolated: true, base: 1_500_000 }).base, 1_500_000);
  assert.throws(() => allocateIdmap(pool, { isolated: true, base: 10 }), /outside the host's id pool/);
  assert.throws(() => allocateIdmap(pool, { isolated: true, base: 1_990_000 }), /outside/);
});

test("security.idmap.* keys are parsed and checked", () => {
  assert.deepEqual(idmapConfig({}), { isolated: false });
  assert.deepEqual(idmapConfig({ "security.idmap.isolated": "true", "security.idmap.size": "auto" }), { isolated: true });
  assert.deepEqual(idmapConfig({ "security.idmap.isolated": "true", "security.idmap.base": "200000", "security.idmap.size": "70000" }), {
    isolated: true,
    base: 200000,
    size: 70000,
  });
  assert.throws(() => idmapConfig({ "security.idmap.base": "-1" }), /security.idmap.base/);
  assert.throws(() => idmapConfig({ "security.idmap.size": "1000" }), /smaller than 65536/);
});

test("ids map in and out; LXD's JSON round-trips", () => {
  const m = allocateIdmap(pool, { isolated: true, base: 1_500_000 }).entries;
  assert.equal(toHost(m, "u", 0), 1_500_000);
  assert.equal(toHost(m, "g", 65535), 1_565_535);
  assert.equal(toHost(m, "u", 65536), undefined);
  assert.equal(toNs(m, "u", 1_500_005), 5);
  assert.equal(toNs(m, "u", 5), undefined);
  const json = idmapToJson(m);
  assert.deepEqual(JSON.parse(json)[0], { Isuid: true, Isgid: false, Hostid: 1_500_000, Nsid: 0, Maprange: 65536 });
  assert.ok(sameIdmap(idmapFromJson(json), m));
  // LXD also writes entries that are both uid and gid.
  const both = idmapFromJson('[{"Isuid":true,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":65536}]');
  assert.deepEqual(lxcIdmapLines(both), ["u 0 1000000 65536", "g 0 1000000 65536"]);
  assert.ok(!sameIdmap(both, m));
});
