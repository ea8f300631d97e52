import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { runCommand, TestDaemon, type RunResult } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { ls, manifest, storeKeys } from "../helpers/backups.js";

// Optimized backups on btrfs (LXD's layout: btrfs send streams), Lodge → Lodge on a loop-backed
// pool, LXD 5.0.2 → Lodge, and refused into a pool of another driver.

const bp = (d: TestDaemon) => join(d.dir, "storage-pools/bp");

async function daemonWithBtrfs(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["storage", "create", "bp", "btrfs", "size=400MiB"]);
  return d;
}

const readonlyProp = async (path: string) => (await runCommand("btrfs", ["property", "get", "-ts", path, "ro"])).stdout.trim();

test("optimized backup on btrfs: LXD's stream layout, imported whole with its snapshots; refused into a dir pool", async (t) => {
  const d = await daemonWithBtrfs(t);
  await d.lxc(["launch", "bb", "o1", "-s", "bp"]);
  await d.lxc(["exec", "o1", "--", "sh", "-c", "echo one > /root/v && echo owned > /root/o && chown 1000:1001 /root/o"]);
  await d.lxc(["snapshot", "o1", "s0"]);
  await d.lxc(["config", "set", "o1", "user.stage", "two"]);
  await d.lxc(["exec", "o1", "--", "sh", "-c", "echo two > /root/v && dd if=/dev/urandom of=/root/blob bs=64k count=8 2>/dev/null"]);
  await d.lxc(["snapshot", "o1", "s1"]);
  await d.lxc(["exec", "o1", "--", "sh", "-c", "echo three > /root/v"]);
  await d.lxc(["stop", "-f", "o1"]);

  const dir = await mkdtemp(join(tmpdir(), "lodge-bk-opt-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "o1.tar.gz");
  const ex = await d.lodge(["export", "o1", file, "--optimized-storage"]);
  assert.equal(ex.code, 0, ex.stderr);
  const names = (await runCommand("tar", ["-tzf", file])).stdout.split("\n").filter(Boolean);
  assert.deepEqual(names, ["backup/index.yaml", "backup/optimized_header.yaml", "backup/snapshots/s0.bin", "backup/snapshots/s1.bin", "backup/container.bin"]);
  const index = parseYaml((await runCommand("tar", ["-xzOf", file, "backup/index.yaml"])).stdout) as Record<string, any>;
  assert.equal(index.optimized, true);
  assert.equal(index.optimized_header, true);
  assert.equal(index.backend, "btrfs");
  assert.deepEqual(index.snapshots, ["s0", "s1"]);
  assert.equal(index.config.container.name, "o1");
  const header = parseYaml((await runCommand("tar", ["-xzOf", file, "backup/optimized_header.yaml"])).stdout) as { subvolumes: { path: string; snapshot: string; readonly: boolean }[] };
  assert.deepEqual(header.subvolumes.map((s) => [s.path, s.snapshot, s.readonly]), [["/", "s0", true], ["/", "s1", true], ["/", "", false]]);
  // The scratch of the export (the streams, the read-only copy sent) is gone.
  assert.deepEqual(await ls(join(d.dir, "backups/instances")), []);
  assert.deepEqual((await ls(join(bp(d), "containers"))), ["o1"]);

  await d.lxc(["import", file, "o2", "--storage", "bp"]);
  assert.deepEqual(await manifest(join(bp(d), "containers/o2/rootfs")), await manifest(join(bp(d), "containers/o1/rootfs")));
  for (const s of ["s0", "s1"]) {
    assert.deepEqual(await manifest(join(bp(d), "containers-snapshots/o2", s, "rootfs")), await manifest(join(bp(d), "containers-snapshots/o1", s, "rootfs")), s);
    assert.equal(await readonlyProp(join(bp(d), "containers-snapshots/o2", s)), "ro=true", `${s} is read-only`);
  }
  assert.equal(await readonlyProp(join(bp(d), "containers/o2")), "ro=false");
  const snaps = JSON.parse((await d.lxc(["query", "/1.0/instances/o2/snapshots?recursion=1"])).stdout) as { name: string; config: Record<string, string> }[];
  assert.deepEqual(snaps.map((s) => s.name), ["s0", "s1"]);
  assert.equal(snaps[1]!.config["user.stage"], "two");
  assert.equal(snaps[0]!.config["user.stage"], undefined);
  await d.lxc(["start", "o2"]);
  assert.equal((await d.lxc(["exec", "o2", "--", "cat", "/root/v"])).stdout, "three\n");
  assert.match((await d.lxc(["exec", "o2", "--", "ls", "-ln", "/root/o"])).stdout, /\s1000\s+1001\s/);
  await d.lxc(["stop", "-f", "o2"]);
  await d.lxc(["restore", "o2", "s0"]);
  await d.lxc(["start", "o2"]);
  assert.equal((await d.lxc(["exec", "o2", "--", "cat", "/root/v"])).stdout, "one\n");
  await d.lxc(["stop", "-f", "o2"]);

  // Into a dir pool: refused, as LXD refuses it, and nothing is left.
  const r = await d.lxc(["import", file, "o3", "--storage", "default"], { allowFail: true });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Optimized backup storage driver "btrfs" differs from the target storage pool driver "dir"/);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout).sort(), ["/1.0/instances/o1", "/1.0/instances/o2"]);
  assert.deepEqual(await ls(join(d.dir, "storage-pools/default/containers")), []);
  assert.deepEqual(storeKeys(d.dir, "instance-snapshots/default/o3/"), []);
  assert.deepEqual(storeKeys(d.dir, "storage-volumes/default/default/container/"), []);
  assert.deepEqual((await ls(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], "scratch left");

  // --instance-only: the volume's stream alone.
  const only = join(dir, "only.tar.gz");
  assert.equal((await d.lodge(["export", "o1", only, "--optimized-storage", "--instance-only"])).code, 0);
  assert.deepEqual((await runCommand("tar", ["-tzf", only])).stdout.split("\n").filter(Boolean), ["backup/index.yaml", "backup/optimized_header.yaml", "backup/container.bin"]);
  await d.lxc(["import", only, "o4", "--storage", "bp"]);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/o4/snapshots"])).stdout), []);
  assert.deepEqual(await manifest(join(bp(d), "containers/o4/rootfs")), await manifest(join(bp(d), "containers/o1/rootfs")));
});

test("LXD 5.0.2 ⇄ Lodge, optimized btrfs backups: each imports the other's, snapshots included", async (t) => {
  const which = await runCommand("sh", ["-c", "command -v lxd"], { allowFail: true });
  assert.equal(which.code, 0, "LXD is needed for this test and is not installed: apt-get install -y lxd");
  const d = await daemonWithBtrfs(t);
  const dir = await mkdtemp(join(tmpdir(), "lodge-lxd-btrfs-"));
  const env = { LXD_DIR: dir, LXD_CONF: join(dir, ".client") };
  const lxd = (args: string[], opts: { allowFail?: boolean } = {}): Promise<RunResult> => runCommand("lxc", args, { ...opts, env, timeoutMs: 120_000 });
  const proc = spawn("lxd", ["--group", "root", "--logfile", join(dir, "lxd.log")], { env: { ...process.env, LXD_DIR: dir }, stdio: "ignore", detached: true });
  t.after(async () => {
    await lxd(["delete", "--force", ...(await lxd(["list", "-c", "n", "-f", "csv"], { allowFail: true })).stdout.split("\n").filter(Boolean)], { allowFail: true });
    await runCommand("lxd", ["shutdown", "--timeout=60"], { env: { LXD_DIR: dir }, allowFail: true, timeoutMs: 70_000 });
    if (proc.exitCode === null) proc.kill("SIGKILL");
    await runCommand("sh", ["-c", `awk '{print $2}' /proc/mounts | grep "^${dir}/" | sort -r | xargs -r umount -l`], { allowFail: true });
    await runCommand("sh", ["-c", `losetup -n -O NAME,BACK-FILE -l | awk '$2 ~ "^${dir}/" {print $1}' | xargs -r -n1 losetup -d`], { allowFail: true });
    await rm(dir, { recursive: true, force: true });
  });
  const ready = await runCommand("lxd", ["waitready", "--timeout=60"], { env: { LXD_DIR: dir }, allowFail: true, timeoutMs: 70_000 });
  assert.equal(ready.code, 0, `LXD did not start: ${ready.stderr}`);
  await lxd(["storage", "create", "lbp", "btrfs", "size=400MiB"]);
  await lxd(["profile", "device", "add", "default", "root", "disk", "path=/", "pool=lbp"]);
  await lxd(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const tag = `opt${process.pid}`;
  await lxd(["launch", "bb", tag]);
  await lxd(["exec", tag, "--", "sh", "-c", "echo snap > /root/f && chown 1000:1000 /root/f"]);
  await lxd(["snapshot", tag, "s0"]);
  await lxd(["exec", tag, "--", "sh", "-c", "echo now > /root/f"]);
  await lxd(["stop", "-f", tag]);
  const file = join(dir, "lxd-opt.tar.gz");
  await lxd(["export", tag, file, "--optimized-storage"]);
  assert.match((await runCommand("tar", ["-tzf", file])).stdout, /^backup\/container\.bin$/m);

  await d.lxc(["import", file, "fromlxd", "--storage", "bp"]);
  const snaps = JSON.parse((await d.lxc(["query", "/1.0/instances/fromlxd/snapshots"])).stdout) as string[];
  assert.deepEqual(snaps, ["/1.0/instances/fromlxd/snapshots/s0"]);
  assert.deepEqual(await ls(join(bp(d), "containers/fromlxd")), ["metadata.yaml", "rootfs", "templates"], "no backup.yaml left in the volume");
  await d.lxc(["start", "fromlxd"]);
  assert.equal((await d.lxc(["exec", "fromlxd", "--", "cat", "/root/f"])).stdout, "now\n");
  await d.lxc(["stop", "-f", "fromlxd"]);
  await d.lxc(["restore", "fromlxd", "s0"]);
  await d.lxc(["start", "fromlxd"]);
  assert.equal((await d.lxc(["exec", "fromlxd", "--", "cat", "/root/f"])).stdout, "snap\n");
  assert.match((await d.lxc(["exec", "fromlxd", "--", "ls", "-ln", "/root/f"])).stdout, /\s1000\s+1000\s/);

  // Lodge → LXD.
  await d.lxc(["exec", "fromlxd", "--", "sh", "-c", "echo lodge > /root/g"]);
  await d.lxc(["stop", "-f", "fromlxd"]);
  const back = join(dir, "lodge-opt.tar.gz");
  await d.lxc(["export", "fromlxd", back, "--optimized-storage"]);
  await lxd(["import", back, `${tag}-l`, "--storage", "lbp"]); // LXD restores an optimized backup only into a pool of that name, or the one given
  assert.deepEqual(JSON.parse((await lxd(["query", `/1.0/instances/${tag}-l/snapshots`])).stdout), [`/1.0/instances/${tag}-l/snapshots/s0`]);
  await lxd(["start", `${tag}-l`]);
  assert.equal((await lxd(["exec", `${tag}-l`, "--", "cat", "/root/f", "/root/g"])).stdout, "snap\nlodge\n");
});

test("lodged killed (-9) while btrfs receives an optimized import: after a restart nothing of it is left", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["storage", "create", "bp", "btrfs", "size=900MiB"]);
  await d.lxc(["launch", "bb", "k1", "-s", "bp"]);
  await d.lxc(["exec", "k1", "--", "sh", "-c", "dd if=/dev/urandom of=/a bs=1M count=32 2>/dev/null"]);
  await d.lxc(["snapshot", "k1", "s0"]);
  await d.lxc(["exec", "k1", "--", "sh", "-c", "dd if=/dev/urandom of=/b bs=1M count=256 2>/dev/null"]);
  await d.lxc(["stop", "-f", "k1"]);
  const file = join(d.dir, "k1.tar");
  const ex = await d.lodge(["export", "k1", file, "--optimized-storage", "--compression", "none"]);
  assert.equal(ex.code, 0, ex.stderr);

  const importing = d.lxc(["import", file, "k2", "--storage", "bp"], { allowFail: true });
  const receiving = join(bp(d), "containers/.k2.receiving");
  let caught = false;
  for (let i = 0; i < 1500 && !caught; i++) {
    caught = (await ls(receiving)).length > 1; // the snapshot's stream is in, the volume's under way
    if (!caught) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(caught, "the receive was not caught in the middle");
  await d.kill9();
  await importing;

  await d.launch();
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/k1"]);
  assert.deepEqual(await ls(join(bp(d), "containers")), ["k1"]);
  assert.deepEqual(await ls(join(bp(d), "containers-snapshots")), ["k1"]);
  for (const prefix of ["instances/default/k2", "instance-snapshots/default/k2/", "storage-volumes/bp/default/container/k2"])
    assert.deepEqual(storeKeys(d.dir, prefix), [], prefix);
  assert.deepEqual((await ls(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], "scratch left");
  const subvolumes = (await runCommand("btrfs", ["subvolume", "list", bp(d)])).stdout;
  assert.doesNotMatch(subvolumes, /k2/, "a received subvolume was left");
  await d.lxc(["import", file, "k2", "--storage", "bp"]);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/k2/snapshots"])).stdout), ["/1.0/instances/k2/snapshots/s0"]);
});
