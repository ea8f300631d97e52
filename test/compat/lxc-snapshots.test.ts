import test from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// Snapshots, restore, copy and move with the real `lxc` client (Debian's lxd-client 5.0.2).

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  return d;
}

const sh = (d: TestDaemon, c: string, script: string, opts = {}) => d.lxc(["exec", c, "--", "sh", "-c", script], opts);
const json = async (d: TestDaemon, path: string) => JSON.parse((await d.lxc(["query", path])).stdout);

test("snapshot, restore: a file written after the snapshot is gone; info lists snapshots", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c1"]);
  await sh(d, "c1", "echo before > /root/a");
  await d.lxc(["snapshot", "c1", "s0"]);
  await sh(d, "c1", "echo after > /root/b; echo changed > /root/a");

  const info = (await d.lxc(["info", "c1"])).stdout;
  assert.match(info, /Snapshots:/);
  assert.match(info, /\| s0 /);
  const snaps = await json(d, "/1.0/instances/c1/snapshots?recursion=1");
  assert.equal(snaps.length, 1);
  assert.equal(snaps[0].name, "s0");
  assert.equal(snaps[0].stateful, false);
  assert.ok(snaps[0].config["volatile.uuid"], "the snapshot keeps the instance's volatile keys");
  assert.equal(snaps[0].expires_at, "0001-01-01T00:00:00Z");

  await d.lxc(["restore", "c1", "s0"]);
  const state = await json(d, "/1.0/instances/c1");
  assert.equal(state.status, "Running", "a running instance runs again after a restore");
  assert.equal((await sh(d, "c1", "cat /root/a")).stdout, "before\n");
  assert.notEqual((await sh(d, "c1", "test -e /root/b", { allowFail: true })).code, 0);

  // A name from the pattern (snap%d), then rename and delete.
  await d.lxc(["snapshot", "c1"]);
  await d.lxc(["snapshot", "c1"]);
  assert.deepEqual(await json(d, "/1.0/instances/c1/snapshots"), ["/1.0/instances/c1/snapshots/s0", "/1.0/instances/c1/snapshots/snap0", "/1.0/instances/c1/snapshots/snap1"]);
  await d.lxc(["move", "c1/snap1", "c1/later"]);
  await d.lxc(["delete", "c1/snap0"]);
  const names = (await json(d, "/1.0/instances/c1?recursion=1")).snapshots.map((s: { name: string }) => s.name);
  assert.deepEqual(names.sort(), ["later", "s0"]);
  const dup = await d.lxc(["snapshot", "c1", "s0"], { allowFail: true });
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /already exists/);
  const stateful = await d.lxc(["snapshot", "c1", "s9", "--stateful"], { allowFail: true });
  assert.match(stateful.stderr, /Stateful snapshots are not supported/);

  // The list shows the count (recursion=2 carries snapshots); the schedule keys apply to a running instance.
  assert.equal((await d.lxc(["list", "-c", "nS", "-f", "csv"])).stdout.trim(), "c1,2");
  await d.lxc(["config", "set", "c1", "snapshots.schedule", "@daily"]);
  await d.lxc(["config", "set", "c1", "snapshots.pattern", "{{ creation_date|date:'2006-01-02_15-04-05' }}"]);
  const bad = await d.lxc(["config", "set", "c1", "snapshots.schedule", "sometimes"], { allowFail: true });
  assert.match(bad.stderr, /snapshots\.schedule/);

  // Rename carries snapshots; delete takes them.
  await d.lxc(["stop", "-f", "c1"]);
  await d.lxc(["move", "c1", "c9"]);
  assert.equal((await json(d, "/1.0/instances/c9/snapshots")).length, 2);
  await d.lxc(["delete", "c9"]);
  assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers-snapshots")).catch(() => []), []);
  assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers")), []);
  await d.lxc(["init", "bb", "c9"]);
  assert.deepEqual(await json(d, "/1.0/instances/c9/snapshots"), [], "a new instance of the name has none of the old one's");
});

test("restore brings config back; expiry sets expires_at; a stopped restore stays stopped", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1", "-c", "user.v=1", "-c", "snapshots.expiry=2d"]);
  await d.lxc(["snapshot", "c1", "s0"]);
  const s0 = await json(d, "/1.0/instances/c1/snapshots/s0");
  const days = (Date.parse(s0.expires_at) - Date.now()) / 86_400_000;
  assert.ok(days > 1.9 && days < 2.1, `expires in ${days} days`);
  await d.lxc(["snapshot", "c1", "s1", "--no-expiry"]);
  assert.equal((await json(d, "/1.0/instances/c1/snapshots/s1")).expires_at, "0001-01-01T00:00:00Z");
  await d.lxc(["config", "set", "c1", "user.v", "2"]);
  await d.lxc(["restore", "c1", "s0"]);
  const c1 = await json(d, "/1.0/instances/c1");
  assert.equal(c1.config["user.v"], "1");
  assert.equal(c1.status, "Stopped");
});

test("copy: independent data, new volatile keys, snapshots carried unless --instance-only, from a snapshot", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c1"]);
  await sh(d, "c1", "echo one > /root/f");
  await d.lxc(["snapshot", "c1", "s0"]);
  await sh(d, "c1", "echo two > /root/f");
  await d.lxc(["snapshot", "c1", "s1"]);
  await sh(d, "c1", "echo three > /root/f");

  // A running source is copied live.
  await d.lxc(["copy", "c1", "c2"]);
  const c1 = await json(d, "/1.0/instances/c1");
  const c2 = await json(d, "/1.0/instances/c2?recursion=1");
  assert.equal(c2.status, "Stopped");
  assert.notEqual(c2.config["volatile.uuid"], c1.config["volatile.uuid"]);
  assert.ok(c2.config["volatile.eth0.hwaddr"] === undefined || c2.config["volatile.eth0.hwaddr"] !== c1.config["volatile.eth0.hwaddr"]);
  assert.deepEqual(c2.snapshots.map((s: { name: string }) => s.name), ["s0", "s1"]);
  await d.lxc(["start", "c2"]);
  assert.equal((await sh(d, "c2", "cat /root/f")).stdout, "three\n");
  await sh(d, "c2", "echo mine > /root/g");
  assert.notEqual((await sh(d, "c1", "test -e /root/g", { allowFail: true })).code, 0, "c2's write is not in c1");
  // The copied snapshots hold their own states.
  await d.lxc(["restore", "c2", "s0"]);
  assert.equal((await sh(d, "c2", "cat /root/f")).stdout, "one\n");
  assert.equal((await sh(d, "c1", "cat /root/f")).stdout, "three\n", "restoring the copy leaves the source");

  await d.lxc(["copy", "c1/s1", "c3"]);
  const c3 = await json(d, "/1.0/instances/c3?recursion=1");
  assert.deepEqual(c3.snapshots, []);
  await d.lxc(["start", "c3"]);
  assert.equal((await sh(d, "c3", "cat /root/f")).stdout, "two\n");

  await d.lxc(["copy", "c1", "c4", "--instance-only", "-c", "user.k=v", "--ephemeral"]);
  const c4 = await json(d, "/1.0/instances/c4?recursion=1");
  assert.deepEqual(c4.snapshots, []);
  assert.equal(c4.config["user.k"], "v");
  assert.equal(c4.ephemeral, true);

  // Without profiles, the copy keeps the source's root disk as its own.
  await d.lxc(["copy", "c1", "c5", "--no-profiles", "--instance-only"]);
  const c5 = await json(d, "/1.0/instances/c5");
  assert.deepEqual(c5.profiles, []);
  assert.equal(c5.devices.root.pool, "default");

  const dup = await d.lxc(["copy", "c1", "c2"], { allowFail: true });
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /already exists/);
});

test("copy --refresh brings an existing copy in line", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["snapshot", "c1", "s0"]);
  await d.lxc(["copy", "c1", "c2"]);
  await d.lxc(["start", "c1"]);
  await sh(d, "c1", "echo new > /root/f");
  await d.lxc(["snapshot", "c1", "s1"]);
  await d.lxc(["delete", "c1/s0"]);
  await d.lxc(["copy", "c1", "c2", "--refresh"]);
  const c2 = await json(d, "/1.0/instances/c2?recursion=1");
  assert.deepEqual(c2.snapshots.map((s: { name: string }) => s.name), ["s1"]);
  await d.lxc(["start", "c2"]);
  assert.equal((await sh(d, "c2", "cat /root/f")).stdout, "new\n");
});

test("a failed copy leaves no volume and no record", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["snapshot", "c1", "s0"]);
  const bad = await d.lxc(["copy", "c1", "c2", "-s", "nowhere"], { allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /nowhere/);
  // Make the data copy itself fail: a source snapshot whose tree is gone.
  await import("node:fs/promises").then((fs) => fs.rm(join(d.dir, "storage-pools/default/containers-snapshots/c1/s0"), { recursive: true }));
  const broken = await d.lxc(["copy", "c1", "c3"], { allowFail: true });
  assert.notEqual(broken.code, 0);
  assert.deepEqual((await json(d, "/1.0/instances")).sort(), ["/1.0/instances/c1"]);
  assert.deepEqual((await readdir(join(d.dir, "storage-pools/default/containers"))).sort(), ["c1"]);
  assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers-snapshots")), ["c1"]);
  assert.deepEqual(await readdir(join(d.dir, "containers")), ["c1"]);
});

test("lxc config edit of a snapshot changes its expiry (PUT with the ETag)", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["snapshot", "c1", "s0"]);
  await d.lxc(["config", "edit", "c1/s0"], { input: "expires_at: 2031-01-02T03:04:05Z\n" });
  assert.equal((await json(d, "/1.0/instances/c1/snapshots/s0")).expires_at, "2031-01-02T03:04:05.000Z");
  const shown = (await d.lxc(["config", "show", "c1/s0"])).stdout;
  assert.match(shown, /expires_at: 2031-01-02T03:04:05/);
});

test("a copy gets its own MACs and uuid, no host-side names, and keeps its base image", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["config", "device", "add", "c1", "eth1", "nic", "nictype=p2p"]);
  await d.lxc(["start", "c1"]);
  const c1 = await json(d, "/1.0/instances/c1");
  assert.ok(c1.config["volatile.eth1.hwaddr"]);
  await d.lxc(["copy", "c1", "c2"]);
  const c2 = await json(d, "/1.0/instances/c2");
  assert.ok(c2.config["volatile.eth1.hwaddr"]);
  assert.notEqual(c2.config["volatile.eth1.hwaddr"], c1.config["volatile.eth1.hwaddr"]);
  assert.notEqual(c2.config["volatile.uuid"], c1.config["volatile.uuid"]);
  assert.equal(c2.config["volatile.eth1.host_name"], undefined);
  assert.equal(c2.config["volatile.last_state.power"], undefined);
  assert.equal(c2.config["volatile.base_image"], c1.config["volatile.base_image"]);
  await d.lxc(["start", "c2"]);
  const mac = (await d.lxc(["exec", "c2", "--", "cat", "/sys/class/net/eth1/address"])).stdout.trim();
  assert.equal(mac, c2.config["volatile.eth1.hwaddr"]);
});
