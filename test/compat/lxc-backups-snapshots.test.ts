import test from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { craft, ls, manifest, storeKeys } from "../helpers/backups.js";
import type { Operation } from "../../src/api/operation.js";

// `lxc export` / `lxc import` with snapshots: each snapshot comes back as a volume snapshot and
// a record (config, devices, dates), or nothing of the import is left.

const pool = (d: TestDaemon) => join(d.dir, "storage-pools/default");
const snapTree = (d: TestDaemon, inst: string, snap: string) => join(pool(d), "containers-snapshots", inst, snap, "rootfs");

interface Snap {
  name: string;
  created_at: string;
  expires_at: string;
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
}
const snapshotsOf = async (d: TestDaemon, inst: string) => JSON.parse((await d.lxc(["query", `/1.0/instances/${inst}/snapshots?recursion=1`])).stdout) as Snap[];

test("lxc import restores the backup's snapshots: trees, config, devices, dates; --instance-only has none", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "c1"]);
  await d.lxc(["config", "set", "c1", "user.stage", "one"]);
  await d.lxc(["config", "device", "add", "c1", "extra", "none"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo one > /root/v && mkdir -p /srv && echo kept > /srv/k && chown 1000:1000 /srv/k"]);
  await d.client.wait(await d.client.post<Operation>("/1.0/instances/c1/snapshots", { name: "s0", expires_at: "2031-02-03T04:05:06Z" }));
  await d.lxc(["config", "set", "c1", "user.stage", "two"]);
  await d.lxc(["config", "device", "remove", "c1", "extra"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo two > /root/v && rm /srv/k && echo new > /srv/n"]);
  await d.lxc(["snapshot", "c1", "s1"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo three > /root/v"]);
  await d.lxc(["stop", "-f", "c1"]);

  const dir = await mkdtemp(join(tmpdir(), "lodge-bk-snap-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "c1.tar.gz");
  await d.lxc(["export", "c1", file]);
  const names = (await runCommand("tar", ["-tzf", file])).stdout.split("\n");
  assert.ok(names.includes("backup/snapshots/s0/rootfs/root/v") && names.includes("backup/snapshots/s1/rootfs/srv/n"));

  await d.lxc(["import", file, "c2"]);
  const before = await snapshotsOf(d, "c1");
  const after = await snapshotsOf(d, "c2");
  assert.deepEqual(after.map((s) => s.name), ["s0", "s1"]);
  for (const [i, s] of after.entries()) {
    const o = before[i]!;
    assert.equal(s.created_at, o.created_at, `${s.name}: created_at`);
    assert.equal(s.expires_at, o.expires_at, `${s.name}: expires_at`);
    assert.deepEqual(s.devices, o.devices, `${s.name}: devices`);
    assert.equal(s.config["user.stage"], o.config["user.stage"], `${s.name}: config`);
    assert.deepEqual(await manifest(snapTree(d, "c2", s.name)), await manifest(snapTree(d, "c1", s.name)), `${s.name}: tree`);
  }
  assert.equal(Date.parse(after[0]!.expires_at), Date.parse("2031-02-03T04:05:06Z"));
  assert.equal(after[0]!.config["user.stage"], "one");
  assert.deepEqual(Object.keys(after[0]!.devices), ["extra"]);
  assert.deepEqual(await ls(join(pool(d), "containers-snapshots/c2/s0")), ["metadata.yaml", "rootfs", "templates"], "no backup.yaml in a snapshot");

  // The instance is the latest state; each snapshot restores its own.
  await d.lxc(["start", "c2"]);
  assert.equal((await d.lxc(["exec", "c2", "--", "cat", "/root/v"])).stdout, "three\n");
  await d.lxc(["stop", "-f", "c2"]);
  await d.lxc(["restore", "c2", "s0"]);
  const c2 = JSON.parse((await d.lxc(["query", "/1.0/instances/c2"])).stdout);
  assert.equal(c2.config["user.stage"], "one");
  await d.lxc(["start", "c2"]);
  assert.equal((await d.lxc(["exec", "c2", "--", "cat", "/root/v", "/srv/k"])).stdout, "one\nkept\n");
  assert.match((await d.lxc(["exec", "c2", "--", "ls", "-ln", "/srv/k"])).stdout, /\s1000\s+1000\s/);
  await d.lxc(["stop", "-f", "c2"]);

  // --instance-only: no snapshots in the tarball, none on import.
  const only = join(dir, "only.tar.gz");
  await d.lxc(["export", "c1", only, "--instance-only"]);
  assert.ok(!(await runCommand("tar", ["-tzf", only])).stdout.includes("backup/snapshots/"));
  await d.lodge(["import", only, "c3"]);
  assert.deepEqual(await snapshotsOf(d, "c3"), []);
  assert.deepEqual(await ls(join(pool(d), "containers-snapshots/c3")), []);
});

test("an import that fails after its snapshots were taken leaves no instance, volume, snapshot or record", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["init", "bb", "f1"]);
  await d.lxc(["snapshot", "f1", "s0"]);
  await d.lxc(["snapshot", "f1", "s1"]);
  const dir = await mkdtemp(join(tmpdir(), "lodge-bk-snapfail-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, "good.tar.gz");
  await d.lxc(["export", "f1", good]);
  // The snapshots unpack and are taken; the instance's own tree fails midway (a hard link
  // whose target comes later in the archive): tar's failure, in the undo of a half-done import.
  const bad = join(dir, "bad.tar.gz");
  await craft(
    good,
    bad,
    `add("backup/container/rootfs/aaa", type=tarfile.LNKTYPE, linkname="backup/container/rootfs/bin/busybox")
link = members.pop()
at = next(i for i, (m, x) in enumerate(members) if m.name == "backup/container/rootfs")
members.insert(at + 1, link)`,
  );
  const r = await d.lxc(["import", bad, "g1"], { allowFail: true });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Cannot hard link/);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/f1"]);
  assert.deepEqual(await ls(join(pool(d), "containers")), ["f1"]);
  assert.deepEqual(await ls(join(pool(d), "containers-snapshots")), ["f1"]);
  assert.deepEqual(storeKeys(d.dir, "instance-snapshots/default/g1/"), []);
  assert.deepEqual(storeKeys(d.dir, "storage-volumes/default/default/container/g1"), []);
  assert.deepEqual(storeKeys(d.dir, "instances/default/g1"), []);
  assert.deepEqual((await ls(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], "scratch left");
  assert.deepEqual(await ls(join(d.dir, "containers")), ["f1"]);
  // The good one imports whole under that name.
  await d.lxc(["import", good, "g1"]);
  assert.deepEqual((await snapshotsOf(d, "g1")).map((s) => s.name), ["s0", "s1"]);
});

test("lodged killed (-9) while an import restores snapshots: after a restart nothing of it is left, and it imports whole again", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "k1"]);
  // Incompressible data in the snapshot and in the instance, so the unpack of the instance's
  // tree (after the snapshot's was taken and recorded) is long enough to be caught.
  await d.lxc(["exec", "k1", "--", "sh", "-c", "dd if=/dev/urandom of=/a bs=1M count=96 2>/dev/null"]);
  await d.lxc(["snapshot", "k1", "s0"]);
  await d.lxc(["exec", "k1", "--", "sh", "-c", "dd if=/dev/urandom of=/b bs=1M count=192 2>/dev/null"]);
  await d.lxc(["stop", "-f", "k1"]);
  const file = join(d.dir, "k1.tar");
  const ex = await d.lodge(["export", "k1", file, "--compression", "none"]);
  assert.equal(ex.code, 0, ex.stderr);

  const importing = d.lxc(["import", file, "k2"], { allowFail: true });
  let caught = false;
  for (let i = 0; i < 1500 && !caught; i++) {
    caught = storeKeys(d.dir, "instance-snapshots/default/k2/").length > 0;
    if (!caught) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(caught, "the import was not caught after its snapshot was recorded");
  await d.kill9();
  await importing;
  assert.ok((await ls(join(pool(d), "containers-snapshots"))).includes("k2"), "the snapshot was on disk at the kill");

  await d.launch();
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/k1"]);
  assert.deepEqual(await ls(join(pool(d), "containers")), ["k1"]);
  assert.deepEqual(await ls(join(pool(d), "containers-snapshots")), ["k1"]);
  for (const prefix of ["instances/default/k2", "instance-snapshots/default/k2/", "storage-volumes/default/default/container/k2"])
    assert.deepEqual(storeKeys(d.dir, prefix), [], prefix);
  assert.deepEqual((await ls(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], "scratch left");
  assert.deepEqual(await ls(join(d.dir, "containers")), ["k1"]);
  await d.lxc(["import", file, "k2"]);
  assert.deepEqual((await snapshotsOf(d, "k2")).map((s) => s.name), ["s0"]);
});
