import test from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon } from "../helpers/daemon.js";

// Profiles through the real `lxc` client (5.0.2): CRUD, layering into instances, and profile
// changes reaching running instances live, all or nothing.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

/** A host directory a container's root can read, removed at the end. */
async function hostDir(t: test.TestContext): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "lodge-prof-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o755);
  const dir = join(base, "share");
  await mkdir(dir);
  await chmod(dir, 0o755);
  await writeFile(join(dir, "hello"), "from the host\n");
  return dir;
}

const sh = (d: TestDaemon, name: string, cmd: string) => d.lxc(["exec", name, "--", "sh", "-c", cmd], { allowFail: true });
const pidOf = async (d: TestDaemon, name: string) => (await d.client.get<{ pid: number }>(`/1.0/instances/${name}/state`)).pid;
const profile = async (d: TestDaemon, name: string) => d.client.get<{ config: Record<string, string>; devices: Record<string, unknown>; used_by: string[] }>(`/1.0/profiles/${name}`);
const instance = async (d: TestDaemon, name: string) =>
  d.client.get<{ profiles: string[]; config: Record<string, string>; expanded_config: Record<string, string>; expanded_devices: Record<string, unknown> }>(`/1.0/instances/${name}`);

/** The memory limit of the process `pid`'s cgroup (v1 memory controller, else the unified one). */
async function memoryLimit(pid: number): Promise<string> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, "utf8")).trim().split("\n");
  const v1 = lines.map((l) => l.split(":")).find(([, ctrls]) => ctrls!.split(",").includes("memory"));
  if (v1) return (await readFile(`/sys/fs/cgroup/memory${v1[2]}/memory.limit_in_bytes`, "utf8")).trim();
  const v2 = lines.find((l) => l.startsWith("0::"))!.slice(3);
  return (await readFile(`/sys/fs/cgroup${v2}/memory.max`, "utf8")).trim();
}
const UNLIMITED = ["max", "9223372036854771712"];

/** Whether something is mounted at `path` inside the container. */
const mountedInside = async (d: TestDaemon, name: string, path: string) => (await sh(d, name, `grep -q ' ${path} ' /proc/self/mountinfo`)).code === 0;

test("lxc profile create/set/device add/assign; three profiles layer in order and the instance overrides all", async (t) => {
  const d = await daemonWithImage(t);
  const share = await hostDir(t);
  for (const p of ["base", "mid", "top"]) assert.equal((await d.lxc(["profile", "create", p])).stdout, `Profile ${p} created\n`);
  await d.lxc(["profile", "set", "base", "user.a", "base"]);
  await d.lxc(["profile", "set", "base", "user.b", "base"]);
  await d.lxc(["profile", "set", "base", "user.c", "base"]);
  await d.lxc(["profile", "set", "mid", "user.b", "mid"]);
  await d.lxc(["profile", "set", "mid", "user.c", "mid"]);
  await d.lxc(["profile", "set", "top", "user.c", "top"]);
  await d.lxc(["profile", "device", "add", "base", "share", "disk", `source=${share}`, "path=/mnt/base"]);
  await d.lxc(["profile", "device", "add", "top", "share", "disk", `source=${share}`, "path=/mnt/top"]);
  assert.equal((await d.lxc(["profile", "get", "mid", "user.b"])).stdout.trim(), "mid");
  const listed = (await d.lxc(["profile", "list", "-f", "csv"])).stdout.trim().split("\n").map((l) => l.split(",")[0]);
  assert.deepEqual(listed, ["base", "default", "mid", "top"]);

  await d.lxc(["launch", "bb", "c1", "-p", "default", "-p", "base", "-p", "mid", "-p", "top", "-c", "user.b=instance"]);
  t.after(() => d.lxc(["delete", "--force", "c1"], { allowFail: true }));
  const c1 = await instance(d, "c1");
  assert.deepEqual(c1.profiles, ["default", "base", "mid", "top"]);
  assert.equal(c1.expanded_config["user.a"], "base");
  assert.equal(c1.expanded_config["user.b"], "instance", "the instance's own key overrides every profile");
  assert.equal(c1.expanded_config["user.c"], "top", "a later profile overrides an earlier one");
  assert.deepEqual(c1.expanded_devices.share, { type: "disk", source: share, path: "/mnt/top" }, "the later profile's device wins");
  assert.deepEqual(c1.expanded_devices.root, { type: "disk", path: "/", pool: "default" });
  assert.equal((await sh(d, "c1", "cat /mnt/top/hello")).stdout, "from the host\n");
  assert.equal(await mountedInside(d, "c1", "/mnt/base"), false);
  assert.match((await d.lxc(["config", "show", "c1", "--expanded"])).stdout, /user\.c: top/);

  // assign / add / remove through lxc, and --no-profiles.
  await d.lxc(["launch", "bb", "c2"]);
  t.after(() => d.lxc(["delete", "--force", "c2"], { allowFail: true }));
  assert.deepEqual((await instance(d, "c2")).profiles, ["default"]);
  await d.lxc(["profile", "assign", "c2", "default,mid"]);
  assert.deepEqual((await instance(d, "c2")).profiles, ["default", "mid"]);
  await d.lxc(["profile", "add", "c2", "top"]);
  assert.equal((await sh(d, "c2", "cat /mnt/top/hello")).stdout, "from the host\n", "a profile added to a running instance plugs its devices in");
  await d.lxc(["profile", "remove", "c2", "top"]);
  assert.equal(await mountedInside(d, "c2", "/mnt/top"), false, "and removing it unplugs them");
  assert.deepEqual((await profile(d, "mid")).used_by, ["/1.0/instances/c1", "/1.0/instances/c2"]);
  const bare = await d.lxc(["init", "bb", "c3", "--no-profiles"], { allowFail: true });
  assert.notEqual(bare.code, 0);
  assert.match(bare.stderr, /no root device/);
  assert.deepEqual(await d.client.get("/1.0/instances"), ["/1.0/instances/c1", "/1.0/instances/c2"], "nothing was made");
  // With its own root disk, an instance needs no profile (lxc 5.0's -s needs the storage API).
  const own = await d.client.post<{ id: string }>("/1.0/instances", { name: "c3", source: { type: "image", alias: "bb" }, profiles: [], devices: { root: { type: "disk", path: "/", pool: "default" } } });
  await d.client.wait(own.id);
  t.after(() => d.lxc(["delete", "--force", "c3"], { allowFail: true }));
  assert.deepEqual((await instance(d, "c3")).profiles, []);
  const unknown = await d.lxc(["launch", "bb", "c4", "-p", "nope"], { allowFail: true });
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /Profile "nope" not found/);

  await d.lxc(["profile", "copy", "top", "top2"]);
  assert.deepEqual((await profile(d, "top2")).config, { "user.c": "top" });
  await d.lxc(["profile", "rename", "top2", "top3"]);
  await d.lxc(["profile", "delete", "top3"]);
  assert.equal((await d.lxc(["profile", "show", "top3"], { allowFail: true })).code, 1);
});

test("a profile edit reaches a running instance: memory limit set and lifted, a disk plugged in and out", async (t) => {
  const d = await daemonWithImage(t);
  const share = await hostDir(t);
  await d.lxc(["profile", "create", "small"]);
  await d.lxc(["launch", "bb", "m1", "-p", "default", "-p", "small"]);
  t.after(() => d.lxc(["delete", "--force", "m1"], { allowFail: true }));
  const pid = await pidOf(d, "m1");
  assert.ok(UNLIMITED.includes(await memoryLimit(pid)));

  await d.lxc(["profile", "set", "small", "limits.memory", "192MiB"]);
  assert.equal(await memoryLimit(pid), String(192 * 1024 * 1024));
  await d.lxc(["profile", "edit", "small"], { input: "config:\n  limits.memory: 160MiB\ndevices: {}\n" });
  assert.equal(await memoryLimit(pid), String(160 * 1024 * 1024));

  await d.lxc(["profile", "device", "add", "small", "data", "disk", `source=${share}`, "path=/mnt/data"]);
  assert.equal((await sh(d, "m1", "cat /mnt/data/hello")).stdout, "from the host\n");
  await d.lxc(["profile", "device", "remove", "small", "data"]);
  assert.equal(await mountedInside(d, "m1", "/mnt/data"), false);

  await d.lxc(["profile", "unset", "small", "limits.memory"]);
  assert.ok(UNLIMITED.includes(await memoryLimit(pid)), "the limit is lifted");
  assert.equal(await pidOf(d, "m1"), pid, "all of it without a restart");
});

test("refused: an invalid profile value, deleting a profile in use, deleting default; nothing changes", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["profile", "create", "p"]);
  await d.lxc(["profile", "set", "p", "limits.memory", "128MiB"]);
  await d.lxc(["launch", "bb", "r1", "-p", "default", "-p", "p"]);
  t.after(() => d.lxc(["delete", "--force", "r1"], { allowFail: true }));
  const pid = await pidOf(d, "r1");
  const before = { p: await profile(d, "p"), def: await profile(d, "default"), r1: await instance(d, "r1") };

  const bad = await d.lxc(["profile", "set", "p", "limits.memory", "lots"], { allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /limits\.memory/);
  const unknown = await d.lxc(["profile", "set", "p", "limits.sparkle", "1"], { allowFail: true });
  assert.match(unknown.stderr, /Unknown instance config key "limits.sparkle"/);
  const inUse = await d.lxc(["profile", "delete", "p"], { allowFail: true });
  assert.notEqual(inUse.code, 0);
  assert.match(inUse.stderr, /in use by instance "r1"/);
  const def = await d.lxc(["profile", "delete", "default"], { allowFail: true });
  assert.notEqual(def.code, 0);
  assert.match(def.stderr, /"default" profile cannot be deleted/);
  const ren = await d.lxc(["profile", "rename", "default", "x"], { allowFail: true });
  assert.match(ren.stderr, /"default" profile cannot be renamed/);

  assert.deepEqual(await profile(d, "p"), before.p);
  assert.deepEqual(await profile(d, "default"), before.def);
  assert.deepEqual(await instance(d, "r1"), before.r1);
  assert.equal(await memoryLimit(pid), String(128 * 1024 * 1024));
});

test("a change one of two running instances cannot take is refused: neither instance nor the profile changes", async (t) => {
  const d = await daemonWithImage(t);
  const share = await hostDir(t);
  await d.lxc(["profile", "create", "shared"]);
  await d.lxc(["profile", "set", "shared", "limits.memory", "128MiB"]);
  // "a1" sorts first, so its change is made, then undone when "b1" cannot take it.
  for (const n of ["a1", "b1"]) {
    await d.lxc(["launch", "bb", n, "-p", "default", "-p", "shared"]);
    t.after(() => d.lxc(["delete", "--force", n], { allowFail: true }));
  }
  // In b1, /mnt/data is a file: a directory cannot be mounted on it.
  await sh(d, "b1", "mkdir -p /mnt && echo file > /mnt/data");
  const pids = { a1: await pidOf(d, "a1"), b1: await pidOf(d, "b1") };
  const before = { shared: await profile(d, "shared"), a1: await instance(d, "a1"), b1: await instance(d, "b1") };

  const r = await d.lxc(["profile", "edit", "shared"], {
    input: `config:\n  limits.memory: 96MiB\ndevices:\n  data:\n    type: disk\n    source: ${share}\n    path: /mnt/data\n`,
    allowFail: true,
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /instance "b1"/);

  assert.deepEqual(await profile(d, "shared"), before.shared, "the profile is unchanged");
  assert.deepEqual(await instance(d, "a1"), before.a1);
  assert.deepEqual(await instance(d, "b1"), before.b1);
  for (const n of ["a1", "b1"] as const) {
    assert.equal(await memoryLimit(pids[n]), String(128 * 1024 * 1024), `${n}'s memory limit is unchanged`);
    assert.equal(await mountedInside(d, n, "/mnt/data"), false, `nothing is mounted in ${n}`);
  }
  assert.equal((await sh(d, "b1", "cat /mnt/data")).stdout, "file\n");
});

test("environment.* keys of a profile reach exec, under the instance's own and the request's", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["profile", "create", "env"]);
  await d.lxc(["profile", "set", "env", "environment.FROM_PROFILE=profile", "environment.BOTH=profile"]);
  await d.lxc(["launch", "bb", "e1", "-p", "default", "-p", "env"]);
  t.after(() => d.lxc(["delete", "--force", "e1"], { allowFail: true }));
  await d.lxc(["config", "set", "e1", "environment.BOTH=instance"]);
  const env = (await sh(d, "e1", "echo $FROM_PROFILE $BOTH")).stdout;
  assert.equal(env, "profile instance\n");
  const given = await d.lxc(["exec", "e1", "--env", "BOTH=request", "--", "sh", "-c", "echo $FROM_PROFILE $BOTH"]);
  assert.equal(given.stdout, "profile request\n");
});
