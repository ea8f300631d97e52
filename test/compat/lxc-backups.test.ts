import test from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { runCommand, TestDaemon, type RunResult } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import type { Operation } from "../../src/api/operation.js";
import { shapeProblems } from "../helpers/api-shape.js";
import { craft, manifest } from "../helpers/backups.js";

// `lxc export` / `lxc import` against lodged, in LXD 5.0.2's backup format, both ways with a
// real LXD; and hostile backup tarballs, refused with nothing left behind.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

const rootfsOf = (d: TestDaemon, name: string) => join(d.dir, "storage-pools/default/containers", name, "rootfs");

/** Writes files of every kind in a running container: owned by a user, set-uid, a symlink, a hard link. */
async function populate(d: TestDaemon, name: string) {
  await d.lxc(["exec", name, "--", "sh", "-c", [
    "mkdir -p /srv/data && echo hello > /srv/data/f && chown 1000:1001 /srv/data/f",
    "cp /bin/busybox /srv/suid && chmod 4755 /srv/suid",
    "ln -s /etc/passwd /srv/link && ln /srv/data/f /srv/hard",
    "dd if=/dev/urandom of=/srv/blob bs=64k count=16 2>/dev/null",
  ].join(" && ")]);
}

test("lxc export then lxc import under a second name: identical files, and the copy runs", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c1"]);
  await populate(d, "c1");
  await d.lxc(["stop", "-f", "c1"]);
  const dir = await mkdtemp(join(tmpdir(), "lodge-bk-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "c1.tar.gz");
  await d.lxc(["export", "c1", file]);

  // LXD's layout: the index first, then the volume, with backup.yaml in it.
  const listing = (await runCommand("tar", ["-tvzf", file, "--numeric-owner"])).stdout.split("\n");
  assert.match(listing[0]!, / backup\/index\.yaml$/);
  assert.ok(listing.some((l) => / backup\/container\/backup\.yaml$/.test(l) && l.startsWith("-r--------")), "backup.yaml, 0400");
  assert.ok(listing.some((l) => / backup\/container\/rootfs\/srv\/data\/f$/.test(l)));
  const index = parseYaml((await runCommand("tar", ["-xzOf", file, "backup/index.yaml"])).stdout) as Record<string, any>;
  assert.equal(index.name, "c1");
  assert.equal(index.backend, "dir");
  assert.equal(index.pool, "default");
  assert.deepEqual(index.snapshots, []);
  assert.equal(index.optimized, false);
  assert.equal(index.type, "container");
  assert.equal(index.config.container.name, "c1");
  assert.equal(index.config.pool.driver, "dir");
  assert.equal(index.config.volume.name, "c1");
  assert.ok("volatile.last_state.idmap" in index.config.container.config);
  // The backup made for the export was deleted by lxc after the download.
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/c1/backups"])).stdout), []);

  await d.lxc(["import", file, "c2"]);
  assert.deepEqual(await manifest(rootfsOf(d, "c2")), await manifest(rootfsOf(d, "c1")));
  await d.lxc(["start", "c2"]);
  assert.equal((await d.lxc(["exec", "c2", "--", "cat", "/srv/data/f"])).stdout, "hello\n");
  assert.match((await d.lxc(["exec", "c2", "--", "ls", "-ln", "/srv/data/f"])).stdout, /^-\S+\s+\d+\s+1000\s+1001 /);
  assert.match((await d.lxc(["exec", "c2", "--", "ls", "-l", "/srv/suid"])).stdout, /^-rwsr-xr-x/);
  // Into another pool (X-LXD-pool): the root disk follows it.
  await d.lxc(["storage", "create", "p2", "dir"]);
  await d.lxc(["import", file, "c3", "--storage", "p2"]);
  const c3 = JSON.parse((await d.lxc(["query", "/1.0/instances/c3"])).stdout);
  assert.equal(c3.expanded_devices.root.pool, "p2");
  const p2 = JSON.parse((await d.lxc(["query", "/1.0/storage-pools/p2"])).stdout);
  assert.deepEqual(await manifest(join(p2.config.source, "containers/c3/rootfs")), await manifest(rootfsOf(d, "c1")));
  await d.lxc(["start", "c3"]);
  assert.equal((await d.lxc(["exec", "c3", "--", "cat", "/srv/data/f"])).stdout, "hello\n");
  const c2 = JSON.parse((await d.lxc(["query", "/1.0/instances/c2"])).stdout);
  const c1 = JSON.parse((await d.lxc(["query", "/1.0/instances/c1"])).stdout);
  assert.notEqual(c2.config["volatile.idmap.base"], undefined);
  assert.equal(c2.config["image.os"], c1.config["image.os"]);
});

test("backups API: create with a name and expiry, list, rename, export, delete; lodge export/import with zstd", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "b1"]);
  const op = await d.client.wait(await d.client.post<Operation>("/1.0/instances/b1/backups", { name: "nightly", expires_at: "2031-01-01T00:00:00Z", compression_algorithm: "none" }));
  assert.equal(op.status, "Success");
  assert.deepEqual(op.resources!.backups, ["nightly"]);
  // An expired backup goes at the next create (lxc export's expire in a day).
  await d.client.wait(await d.client.post<Operation>("/1.0/instances/b1/backups", { name: "stale", expires_at: "2001-01-01T00:00:00Z" }));
  await d.client.wait(await d.client.post<Operation>("/1.0/instances/b1/backups", {}));
  const list = JSON.parse((await d.lxc(["query", "/1.0/instances/b1/backups?recursion=1"])).stdout) as { name: string; expires_at: string; instance_only: boolean }[];
  assert.deepEqual(list.map((b) => b.name).sort(), ["backup0", "nightly"]);
  assert.equal(list.find((b) => b.name === "nightly")!.expires_at, "2031-01-01T00:00:00Z");
  for (const b of list) assert.deepEqual(await shapeProblems("InstanceBackup", b), [], `backup ${b.name}`);
  assert.deepEqual(await shapeProblems("InstanceBackup", await d.client.get("/1.0/instances/b1/backups/nightly")), []);
  // recursion=2 lists them inline, as `lxc list`/`lxc info` read them.
  const full = JSON.parse((await d.lxc(["query", "/1.0/instances?recursion=2"])).stdout) as { backups: { name: string }[] }[];
  assert.deepEqual(full[0]!.backups.map((b) => b.name).sort(), ["backup0", "nightly"]);
  const file = join(d.dir, "backups/instances/b1/nightly");
  const st = await stat(file);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await stat(join(d.dir, "backups"))).mode & 0o777, 0o700);
  assert.match((await runCommand("tar", ["-tf", file])).stdout, /^backup\/index\.yaml$/m, "compression none is a plain tar");

  const dup = await d.lxc(["query", "-X", "POST", "/1.0/instances/b1/backups", "-d", '{"name":"nightly"}'], { allowFail: true });
  assert.match(dup.stderr, /already exists/);
  const opt = await d.lxc(["query", "-X", "POST", "/1.0/instances/b1/backups", "-d", '{"optimized_storage":true}'], { allowFail: true });
  assert.match(opt.stderr, /Optimized backups need a storage driver that has them; pool "default" \(dir\) has none/);
  const badComp = await d.lxc(["query", "-X", "POST", "/1.0/instances/b1/backups", "-d", '{"compression_algorithm":"rar"}'], { allowFail: true });
  assert.match(badComp.stderr, /Unsupported compression algorithm "rar"/);

  await d.client.wait(await d.client.post<Operation>("/1.0/instances/b1/backups/nightly", { name: "weekly" }));
  const got = join(d.dir, "weekly.tar");
  await runCommand("curl", ["-sSf", "-o", got, "--unix-socket", d.socket, "http://lodge/1.0/instances/b1/backups/weekly/export"]);
  assert.match((await runCommand("tar", ["-tf", got])).stdout, /^backup\/index\.yaml$/m, "export streams the tarball");
  await d.client.wait(await d.client.delete<Operation>("/1.0/instances/b1/backups/weekly"));
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/b1/backups"])).stdout), ["/1.0/instances/b1/backups/backup0"]);

  // lodge export / import, zstd.
  const out = join(d.dir, "b1.tar.zst");
  const ex = await d.lodge(["export", "b1", out, "--compression", "zstd"]);
  assert.equal(ex.code, 0, ex.stderr);
  assert.match((await runCommand("file", [out])).stdout, /Zstandard/);
  const im = await d.lodge(["import", out, "b2"]);
  assert.equal(im.code, 0, im.stderr);
  assert.deepEqual(await manifest(rootfsOf(d, "b2")), await manifest(rootfsOf(d, "b1")));

  // Backups follow their instance's rename.
  await d.lxc(["rename", "b1", "b1r"]);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/b1r/backups"])).stdout), ["/1.0/instances/b1r/backups/backup0"]);
  assert.deepEqual(await readdir(join(d.dir, "backups/instances/b1r")), ["backup0"]);
  await d.lxc(["rename", "b1r", "b1"]);

  // A running instance's files are taken as they are, even while they change.
  await d.lxc(["start", "b2"]);
  await d.lxc(["exec", "b2", "--", "sh", "-c", "(while :; do date >> /root/busy; done) >/dev/null 2>&1 &"]);
  await d.lxc(["export", "b2", join(d.dir, "live.tar.gz")]);
  await d.lxc(["stop", "-f", "b2"]);

  // An instance called "backup" (its names must not mix with the tarball's own).
  await d.lxc(["init", "bb", "backup"]);
  const named = join(d.dir, "named.tar.gz");
  await d.lxc(["export", "backup", named]);
  const names = (await runCommand("tar", ["-tzf", named])).stdout.split("\n");
  assert.equal(names.filter((n) => n === "backup/index.yaml").length, 1);
  assert.ok(names.includes("backup/container/rootfs/bin/busybox"));
  assert.ok(names.every((n) => n === "" || n === "backup/index.yaml" || n.startsWith("backup/container")), "nothing else in the tarball");
  await d.lxc(["import", named, "backup2"]);

  // Deleting the instance deletes its backups.
  await d.lxc(["delete", "b1"]);
  assert.deepEqual(await readdir(join(d.dir, "backups/instances")), []);
});

test("hostile backup tarballs are refused, and nothing of them is left", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "h1"]);
  const dir = await mkdtemp(join(tmpdir(), "lodge-bk-hostile-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, "good.tar.gz");
  await d.lxc(["export", "h1", good]);
  const canary = join(dir, "escaped");

  const cases: [string, string, RegExp][] = [
    ["dotdot", `add("backup/container/rootfs/../../../../../../..${canary}", b"x")`, /contains "\.\." and would land outside/],
    ["absolute", `add("${canary}", b"x")`, /has an absolute path/],
    ["device node", `add("backup/container/rootfs/etc/disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)`, /is a device node outside \/dev/],
    [
      "symlinked volume dir",
      `members[:] = [(m, x) for m, x in members if not m.name.startswith("backup/container")]
add("backup/container", type=tarfile.SYMTYPE, linkname="${dir}")
add("backup/container/escaped", b"x")`,
      /backup\/container must be a directory|written through the symlink/,
    ],
    ["hard link out of the rootfs", `add("backup/container/rootfs/etc/idx", type=tarfile.LNKTYPE, linkname="backup/index.yaml")`, /hard links may only join files inside an instance's rootfs/],
    [
      "index lists a snapshot that is not there",
      `import re
for i, (m, x) in enumerate(members):
    if m.name == "backup/index.yaml":
        x = x.replace(b"snapshots: []", b"snapshots:\\n  - snap0")
        m.size = len(x)
        members[i] = (m, x)`,
      /lists snapshot "snap0", which is not in the tarball/,
    ],
    [
      "index names another instance than backup.yaml",
      `for i, (m, x) in enumerate(members):
    if m.name == "backup/index.yaml":
        x = x.replace(b"name: h1", b"name: other", 1)
        m.size = len(x)
        members[i] = (m, x)`,
      /names instance "other", but backup\.yaml "h1"/,
    ],
    ["a file outside the layout", `add("backup/container/evil.sh", b"x")`, /outside an instance volume's layout/],
    [
      // Passes the checks; tar fails midway (the link's target comes later): the unpack's undo.
      "an unpack that fails midway",
      `add("backup/container/rootfs/aaa", type=tarfile.LNKTYPE, linkname="backup/container/rootfs/bin/busybox")
link = members.pop()
at = next(i for i, (m, x) in enumerate(members) if m.name == "backup/container/rootfs")
members.insert(at + 1, link)`,
      /Cannot hard link/,
    ],
  ];
  const before = await readdir(join(d.dir, "storage-pools/default/containers"));
  for (const [what, python, refusal] of cases) {
    const file = join(dir, `${what.replace(/ /g, "-")}.tar.gz`);
    await craft(good, file, python);
    const r = await d.lxc(["import", file, "imported"], { allowFail: true });
    assert.notEqual(r.code, 0, `${what}: imported`);
    assert.match(r.stderr, refusal, `${what}: ${r.stderr}`);
    assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/h1"], what);
    assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers")), before, `${what}: a volume was left`);
    assert.deepEqual((await readdir(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], `${what}: scratch left`);
    assert.deepEqual(await readdir(join(d.dir, "containers")).then((l) => l.sort()), ["h1"], `${what}: liblxc config left`);
    await assert.rejects(stat(canary), `${what}: a file escaped`);
  }
  // A gzip stream cut short halfway: refused by the filter that decompresses the upload.
  const cut = join(dir, "cut.tar.gz");
  const whole = await readFile(good);
  await writeFile(cut, whole.subarray(0, Math.floor(whole.length / 2)));
  const r = await d.lxc(["import", cut, "imported"], { allowFail: true });
  assert.notEqual(r.code, 0, "a cut stream imported");
  assert.match(r.stderr, /Invalid backup: the gzip stream cannot be decompressed/);
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/h1"]);
  assert.deepEqual((await readdir(join(d.dir, "backups"))).filter((f) => f !== "instances"), [], "scratch left after a cut stream");
  // The untouched tarball still imports (the refusals were about the edits).
  await d.lxc(["import", good, "imported"]);
});

test("lodged killed (-9) in the middle of an import: after a restart the instance is absent, nothing left", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "k1"]);
  // Incompressible data, so the unpack takes long enough to be caught in the middle.
  await d.lxc(["exec", "k1", "--", "sh", "-c", "dd if=/dev/urandom of=/big bs=1M count=192 2>/dev/null"]);
  await d.lxc(["stop", "-f", "k1"]);
  const file = join(d.dir, "k1.tar");
  const ex = await d.lodge(["export", "k1", file, "--compression", "none"], { allowFail: true });
  assert.equal(ex.code, 0, ex.stderr);
  const importing = d.lxc(["import", file, "k2"], { allowFail: true });
  const volume = join(d.dir, "storage-pools/default/containers/k2");
  for (let i = 0; i < 600 && !(await stat(join(volume, "rootfs")).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(await stat(join(volume, "rootfs")).catch(() => undefined), "the unpack was not caught in the middle");
  await d.kill9();
  await importing;
  await d.launch();
  assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances"])).stdout), ["/1.0/instances/k1"]);
  assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers")), ["k1"]);
  assert.deepEqual((await readdir(join(d.dir, "backups"))).filter((f) => f !== "instances"), []);
  assert.deepEqual(await readdir(join(d.dir, "containers")), ["k1"]);
  // And the same tarball imports whole afterwards.
  await d.lxc(["import", file, "k2"]);
});

// ---- LXD ⇄ Lodge ----

interface Lxd {
  dir: string;
  proc: ChildProcess;
  lxc(args: string[], opts?: { allowFail?: boolean }): Promise<RunResult>;
}

/** Debian's LXD 5.0.2 on a directory of its own, with a dir pool; a test fails if it cannot run. */
async function startLxd(t: test.TestContext): Promise<Lxd> {
  const which = await runCommand("sh", ["-c", "command -v lxd"], { allowFail: true });
  assert.equal(which.code, 0, "LXD is needed for this test and is not installed: apt-get install -y lxd");
  const dir = await mkdtemp(join(tmpdir(), "lodge-lxd-"));
  const env = { ...process.env, LXD_DIR: dir };
  const proc = spawn("lxd", ["--group", "root", "--logfile", join(dir, "lxd.log")], { env, stdio: "ignore", detached: true });
  const lxd: Lxd = {
    dir,
    proc,
    lxc: (args, opts = {}) => runCommand("lxc", args, { ...opts, env: { LXD_DIR: dir, LXD_CONF: join(dir, ".client") }, timeoutMs: 120_000 }),
  };
  t.after(async () => {
    await lxd.lxc(["delete", "--force", ...(await lxd.lxc(["list", "-c", "n", "-f", "csv"], { allowFail: true })).stdout.split("\n").filter(Boolean)], { allowFail: true });
    await runCommand("lxd", ["shutdown", "--timeout=60"], { env: { LXD_DIR: dir }, allowFail: true, timeoutMs: 70_000 });
    if (proc.exitCode === null) proc.kill("SIGKILL");
    await runCommand("sh", ["-c", `grep -q " ${dir}/" /proc/mounts && awk '{print $2}' /proc/mounts | grep "^${dir}/" | sort -r | xargs -r umount -l`], { allowFail: true });
    await rm(dir, { recursive: true, force: true });
  });
  const ready = await runCommand("lxd", ["waitready", "--timeout=60"], { env: { LXD_DIR: dir }, allowFail: true, timeoutMs: 70_000 });
  assert.equal(ready.code, 0, `LXD did not start: ${ready.stderr}`);
  await lxd.lxc(["storage", "create", "default", "dir"]);
  await lxd.lxc(["profile", "device", "add", "default", "root", "disk", "path=/", "pool=default"]);
  await lxd.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return lxd;
}

test("LXD 5.0.2 ⇄ Lodge: each imports the other's export, and it runs with its files and owners", async (t) => {
  const d = await daemonWithImage(t);
  const lxd = await startLxd(t);
  const dir = await mkdtemp(join(tmpdir(), "lodge-bk-lxd-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const tag = `bk${process.pid}`;

  // LXD → Lodge, with a snapshot: restored with the instance.
  await lxd.lxc(["launch", "bb", `${tag}-x`]);
  await lxd.lxc(["exec", `${tag}-x`, "--", "sh", "-c", "echo from-lxd > /root/f && chown 1000:1000 /root/f"]);
  await lxd.lxc(["snapshot", `${tag}-x`, "s0"]);
  await lxd.lxc(["stop", "-f", `${tag}-x`]);
  const fromLxd = join(dir, "from-lxd.tar.gz");
  await lxd.lxc(["export", `${tag}-x`, fromLxd]);
  await d.lxc(["import", fromLxd, "fromlxd"]);
  const snaps = JSON.parse((await d.lxc(["query", "/1.0/instances/fromlxd/snapshots?recursion=1"])).stdout) as { name: string; config: Record<string, string> }[];
  assert.deepEqual(snaps.map((s) => s.name), ["s0"]);
  assert.ok("volatile.last_state.idmap" in snaps[0]!.config, "the snapshot keeps how its tree is owned");
  assert.equal((await readFile(join(d.dir, "storage-pools/default/containers-snapshots/fromlxd/s0/rootfs/root/f"), "utf8")), "from-lxd\n");

  // Not started yet: the tree is as LXD had it on disk (shifted); publishing unshifts it.
  const published = await d.client.wait(await d.client.post<Operation>("/1.0/images", { source: { type: "instance", name: "fromlxd" } }));
  const fp = (published.metadata as { fingerprint: string }).fingerprint;
  const owners = (await runCommand("tar", ["-tvzf", join(d.dir, "images", fp), "--numeric-owner", "rootfs/root/f", "rootfs/bin/busybox"])).stdout;
  assert.match(owners, /1000\/1000 .* rootfs\/root\/f/);
  assert.match(owners, / 0\/0 .* rootfs\/bin\/busybox/);

  await d.lxc(["start", "fromlxd"]);
  assert.equal((await d.lxc(["exec", "fromlxd", "--", "cat", "/root/f"])).stdout, "from-lxd\n");
  assert.match((await d.lxc(["exec", "fromlxd", "--", "ls", "-ln", "/root/f"])).stdout, /\s1000\s+1000\s/);
  assert.match((await d.lxc(["exec", "fromlxd", "--", "ls", "-ln", "/bin/busybox"])).stdout, /\s0\s+0\s/);

  // Lodge → LXD.
  await d.lxc(["exec", "fromlxd", "--", "sh", "-c", "echo from-lodge > /root/g && chown 1001:1002 /root/g"]);
  await d.lxc(["stop", "-f", "fromlxd"]);
  const fromLodge = join(dir, "from-lodge.tar.gz");
  await d.lxc(["export", "fromlxd", fromLodge]);
  await lxd.lxc(["import", fromLodge, `${tag}-l`]);
  await lxd.lxc(["start", `${tag}-l`]);
  assert.equal((await lxd.lxc(["exec", `${tag}-l`, "--", "cat", "/root/g", "/root/f"])).stdout, "from-lodge\nfrom-lxd\n");
  assert.match((await lxd.lxc(["exec", `${tag}-l`, "--", "ls", "-ln", "/root/g"])).stdout, /\s1001\s+1002\s/);
  assert.match((await lxd.lxc(["exec", `${tag}-l`, "--", "ls", "-ln", "/bin/busybox"])).stdout, /\s0\s+0\s/);
});
