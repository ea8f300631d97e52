import test from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cgroup } from "../../src/sys/cgroup.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";

// disk, unix-char and unix-block devices through the real `lxc` client (5.0.2): applied at
// start, and hot-plugged into a running container (no restart: the init pid stays the same).

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

/** A host directory a container's root can read (its parents searchable), removed at the end. */
async function hostDir(t: test.TestContext, mode = 0o755): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "lodge-dev-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o755);
  const dir = join(base, "share");
  await mkdir(dir);
  await chmod(dir, mode);
  await writeFile(join(dir, "hello"), "from the host\n");
  return dir;
}

const pidOf = async (d: TestDaemon, name: string) => JSON.parse((await d.lxc(["query", `/1.0/instances/${name}/state`])).stdout).pid as number;
const sh = async (d: TestDaemon, name: string, cmd: string) => d.lxc(["exec", name, "--", "sh", "-c", cmd], { allowFail: true });
const devices = async (d: TestDaemon, name: string) => (await d.lxc(["config", "device", "list", name])).stdout.split("\n").filter(Boolean).sort();
const hostMountsOf = async (path: string) => (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.includes(path));

/**
 * The container's device access list, read from its v1 devices cgroup on the host; undefined
 * on a cgroup v2 host, where access is an eBPF program liblxc loads at start (no list to read).
 */
async function deviceList(pid: number): Promise<string[] | undefined> {
  const dir = (await Cgroup.ofPid(pid)).dir("devices");
  if (dir?.version !== 1) return undefined;
  return (await readFile(join(dir.dir, "devices.list"), "utf8")).split("\n");
}

/** Nothing of the daemon's device nodes or mounts is left on the host. */
async function assertNothingLeft(d: TestDaemon, ...paths: string[]) {
  assert.deepEqual(await readdir(join(d.dir, "devices")).catch(() => []), [], "no device nodes under LODGE_DIR/devices");
  for (const p of [d.dir, ...paths]) assert.deepEqual(await hostMountsOf(p), [], `no host mount of ${p}`);
}

test("disk hot-plug: add, read-only, change and remove while the container runs", async (t) => {
  const d = await daemonWithImage(t);
  const share = await hostDir(t);
  const writable = await hostDir(t, 0o777);
  await d.lxc(["launch", "bb", "c1"]);
  t.after(() => d.lxc(["delete", "--force", "c1"], { allowFail: true }));
  const pid = await pidOf(d, "c1");

  assert.equal((await d.lxc(["config", "device", "add", "c1", "d1", "disk", `source=${share}`, "path=/mnt/x"])).stdout, "Device d1 added to c1\n");
  assert.equal((await sh(d, "c1", "ls /mnt/x; cat /mnt/x/hello")).stdout, "hello\nfrom the host\n");
  assert.deepEqual(await hostMountsOf(share), [], "the mount is made inside the container only");

  await d.lxc(["config", "device", "add", "c1", "ro", "disk", `source=${writable}`, "path=/mnt/ro", "readonly=true"]);
  assert.equal((await sh(d, "c1", "cat /mnt/ro/hello")).stdout, "from the host\n");
  const refused = await sh(d, "c1", "touch /mnt/ro/new");
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /Read-only file system/);
  // A changed device is applied live too: now writable.
  await d.lxc(["config", "device", "set", "c1", "ro", "readonly=false"]);
  assert.equal((await sh(d, "c1", "touch /mnt/ro/new && echo written")).stdout, "written\n");
  assert.equal((await sh(d, "c1", "grep -c ' /mnt/ro ' /proc/self/mountinfo")).stdout.trim(), "1", "the old mount was replaced, not stacked");

  // shift=true: an idmapped mount, so the host's root owns the files as the container's root.
  assert.equal((await sh(d, "c1", "stat -c %u /mnt/x/hello")).stdout.trim(), "65534", "unshifted: host root is nobody inside");
  await d.lxc(["config", "device", "add", "c1", "sh", "disk", `source=${share}`, "path=/mnt/shifted", "shift=true"]);
  assert.equal((await sh(d, "c1", "stat -c %u /mnt/shifted/hello")).stdout.trim(), "0");

  // A missing source with required=false is skipped quietly.
  await d.lxc(["config", "device", "add", "c1", "opt", "disk", "source=/nonexistent/lodge-opt", "path=/mnt/opt", "required=false"]);
  assert.notEqual((await sh(d, "c1", "grep ' /mnt/opt ' /proc/self/mountinfo")).code, 0);

  await d.lxc(["config", "device", "remove", "c1", "d1"]);
  assert.equal((await sh(d, "c1", "grep ' /mnt/x ' /proc/self/mountinfo")).stdout, "", "unmounted inside");
  assert.equal((await sh(d, "c1", "ls -A /mnt/x")).stdout, "", "only the empty mount point is left");
  await d.lxc(["config", "device", "remove", "c1", "ro"]);
  assert.notEqual((await sh(d, "c1", "cat /mnt/ro/hello")).code, 0);
  await d.lxc(["config", "device", "remove", "c1", "sh"]);

  assert.equal(await pidOf(d, "c1"), pid, "never restarted");
  // The record says what runs: after a restart the same devices are there.
  await d.lxc(["restart", "c1"]);
  assert.deepEqual(await devices(d, "c1"), ["opt"]);
  await d.lxc(["delete", "--force", "c1"]);
  await assertNothingLeft(d, share, writable);
});

test("disk recursive and propagation: sub-mounts bound too, host mounts propagated into rslave binds, at start and hot-plugged", async (t) => {
  const d = await daemonWithImage(t);
  // Host mounts made here go (last first) before the directory holding them is removed.
  const hostMounts: string[] = [];
  t.after(async () => {
    for (const m of hostMounts.reverse()) await runCommand("umount", ["-l", m], { allowFail: true });
  });
  const share = await hostDir(t);
  const mountOnHost = async (dir: string, text: string) => {
    await mkdir(dir, { recursive: true });
    await runCommand("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", dir]);
    hostMounts.push(dir);
    await writeFile(join(dir, "file"), text);
  };
  // The share is a shared mount of its own (this host's / is private): binds of it can
  // then receive what is mounted under it later, when their propagation says so.
  await runCommand("mount", ["--bind", share, share]);
  hostMounts.push(share);
  await runCommand("mount", ["--make-shared", share]);
  await mountOnHost(join(share, "sub"), "in the sub-mount\n");

  await d.lxc(["init", "bb", "c2"]);
  t.after(() => d.lxc(["delete", "--force", "c2"], { allowFail: true }));
  await d.lxc(["config", "device", "add", "c2", "r", "disk", `source=${share}`, "path=/mnt/r", "recursive=true", "propagation=rslave"]);
  await d.lxc(["start", "c2"]);
  assert.equal((await sh(d, "c2", "cat /mnt/r/sub/file")).stdout, "in the sub-mount\n", "recursive: the sub-mount is there");

  // Hot-plugged the same way, and without recursion for comparison. (At start, the kernel
  // refuses an unprivileged container a non-recursive bind of a tree with sub-mounts; a
  // hot-plug clones the tree on the host, where it may.)
  await d.lxc(["config", "device", "add", "c2", "h", "disk", `source=${share}`, "path=/mnt/h", "recursive=true", "propagation=rslave"]);
  assert.equal((await sh(d, "c2", "cat /mnt/h/sub/file")).stdout, "in the sub-mount\n");
  await d.lxc(["config", "device", "add", "c2", "n", "disk", `source=${share}`, "path=/mnt/n"]);
  assert.equal((await sh(d, "c2", "ls -A /mnt/n/sub")).stdout, "", "not recursive: only the directory under the sub-mount");

  // Mounted on the host afterwards: seen through the rslave binds only.
  await mountOnHost(join(share, "later"), "mounted later\n");
  assert.equal((await sh(d, "c2", "cat /mnt/r/later/file")).stdout, "mounted later\n", "propagated into the bind made at start");
  assert.equal((await sh(d, "c2", "cat /mnt/h/later/file")).stdout, "mounted later\n", "propagated into the hot-plugged bind");
  assert.notEqual((await sh(d, "c2", "cat /mnt/n/later/file")).code, 0, "a private bind sees nothing new");

  // At the next start the kernel would refuse the non-recursive bind (an unprivileged
  // container cannot uncover what the sub-mount hides): the start says so and what to do.
  await d.lxc(["stop", "--force", "c2"]);
  const start = await d.lxc(["start", "c2"], { allowFail: true });
  assert.notEqual(start.code, 0);
  assert.match(start.stderr, new RegExp(`disk /mnt/n: ${share} has a mount below it \\(${share}/sub\\).*set recursive=true`));
  await d.lxc(["config", "device", "set", "c2", "n", "recursive=true"]);
  await d.lxc(["start", "c2"]);
  assert.equal((await sh(d, "c2", "cat /mnt/n/sub/file")).stdout, "in the sub-mount\n");

  // Bad values: refused by name, nothing stored.
  const bad = await d.lxc(["config", "device", "add", "c2", "b", "disk", `source=${share}`, "path=/mnt/b", "propagation=sideways"], { allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Invalid device "b": "propagation" "sideways" is not one of private, shared, slave/);
  const vol = await d.lxc(["config", "device", "add", "c2", "v", "disk", "pool=default", "source=vol1", "path=/mnt/v"], { allowFail: true });
  assert.notEqual(vol.code, 0);
  assert.match(vol.stderr, /Invalid device "v": storage volume "vol1" not found in pool "default"/);
  assert.deepEqual(await devices(d, "c2"), ["h", "n", "r"]);
  await d.lxc(["delete", "--force", "c2"]);
});

test("unix-char and unix-block: at start and hot-plugged, with the device cgroup following", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "u1"]);
  t.after(() => d.lxc(["delete", "--force", "u1"], { allowFail: true }));
  await d.lxc(["config", "device", "add", "u1", "z", "unix-char", "source=/dev/zero", "path=/dev/myzero"]);
  await d.lxc(["config", "device", "add", "u1", "gone", "unix-char", "source=/dev/lodge-no-such-node", "path=/dev/gone", "required=false"]);
  await d.lxc(["start", "u1"]);
  const pid = await pidOf(d, "u1");
  assert.equal((await sh(d, "u1", "head -c 4 /dev/myzero | od -An -tx1")).stdout.trim(), "00 00 00 00");
  // Numbers from the host's /dev/zero; owner root and mode 0660 as the container sees them.
  assert.equal((await sh(d, "u1", "stat -c '%t:%T %a %u:%g %F' /dev/myzero")).stdout.trim(), "1:5 660 0:0 character special file");
  assert.notEqual((await sh(d, "u1", "ls /dev/gone")).code, 0, "a missing optional source is skipped");

  if ((await deviceList(pid)) === undefined) {
    // cgroup v2: device access is an eBPF program set at start, so a device that needs access
    // is refused live with a message saying so, and nothing changes inside.
    for (const add of [["lp", "unix-block", "source=/dev/loop0", "path=/dev/myloop"], ["z2", "unix-char", "source=/dev/zero", "path=/dev/deep/hotzero"]]) {
      const r = await d.lxc(["config", "device", "add", "u1", ...add], { allowFail: true });
      assert.notEqual(r.code, 0, `${add[0]} is refused live on cgroup v2`);
      assert.match(r.stderr, /can only be granted live with the cgroup v1 devices controller/);
    }
    assert.notEqual((await sh(d, "u1", "ls /dev/myloop")).code, 0);
    assert.equal((await readdir(join(d.dir, "devices", "u1"))).join(" "), "unix.z");
  } else {
    // Hot-plugged: a block device the default list does not allow, and another char device.
    assert.ok(!(await deviceList(pid))!.includes("b 7:0 rwm"));
    await d.lxc(["config", "device", "add", "u1", "lp", "unix-block", "source=/dev/loop0", "path=/dev/myloop", "mode=0600"]);
    assert.ok((await deviceList(pid))!.includes("b 7:0 rwm"), "access allowed in the container's cgroup");
    assert.equal((await sh(d, "u1", "stat -c '%t:%T %a %F' /dev/myloop")).stdout.trim(), "7:0 600 block special file");
    const open = await sh(d, "u1", "dd if=/dev/myloop of=/dev/null bs=512 count=0 && echo opened");
    assert.equal(open.stdout, "opened\n", open.stderr);
    await d.lxc(["config", "device", "add", "u1", "z2", "unix-char", "source=/dev/zero", "path=/dev/deep/hotzero", "uid=1000", "mode=0640"]);
    assert.equal((await sh(d, "u1", "head -c 4 /dev/deep/hotzero | od -An -tx1")).stdout.trim(), "00 00 00 00");
    assert.equal((await sh(d, "u1", "stat -c '%a %u' /dev/deep/hotzero")).stdout.trim(), "640 1000");
    assert.equal((await readdir(join(d.dir, "devices", "u1"))).sort().join(" "), "unix.lp unix.z unix.z2", "nodes made under LODGE_DIR/devices");

    await d.lxc(["config", "device", "remove", "u1", "lp"]);
    assert.ok(!(await deviceList(pid))!.includes("b 7:0 rwm"), "access withdrawn");
    assert.notEqual((await sh(d, "u1", "ls /dev/myloop")).code, 0, "the node is gone inside");
    await d.lxc(["config", "device", "remove", "u1", "z2"]);
    assert.notEqual((await sh(d, "u1", "ls /dev/deep/hotzero")).code, 0);
    // c 1:5 is in the default list: removing z2 must not take /dev/zero away from the others.
    assert.ok((await deviceList(pid))!.includes("c 1:5 rwm"));
    assert.equal((await sh(d, "u1", "head -c 2 /dev/myzero | od -An -tx1")).stdout.trim(), "00 00");
    assert.equal((await readdir(join(d.dir, "devices", "u1"))).join(" "), "unix.z");
  }

  assert.equal(await pidOf(d, "u1"), pid, "never restarted");
  await d.lxc(["delete", "--force", "u1"]);
  await assertNothingLeft(d);
});

test("bad devices are refused with a clear 400 and change nothing, running or stopped", async (t) => {
  const d = await daemonWithImage(t);
  const share = await hostDir(t);
  await d.lxc(["launch", "bb", "b1"]);
  await d.lxc(["init", "bb", "b2"]);
  t.after(() => d.lxc(["delete", "--force", "b1", "b2"], { allowFail: true }));
  const cases: [string[], RegExp][] = [
    [["bad", "unix-char", "source=/dev/zero", "major=abc"], /Invalid device "bad": .*"major".*"abc" is not an integer/],
    [["bad", "unix-char", "source=/dev/zero", "minor=2000000"], /"minor" 2000000 is out of range/],
    [["bad", "unix-char", "source=/dev/zero", "path=dev/rel"], /"path" must be an absolute path/],
    [["bad", "disk", `source=${share}`, "path=mnt/rel"], /"path" must be an absolute path/],
    [["bad", "disk", "source=/nonexistent/lodge-src", "path=/mnt/n"], /Device "bad": source "\/nonexistent\/lodge-src" does not exist on the host/],
    [["bad", "unix-char", "source=/dev/lodge-no-such-node"], /Device "bad": source "\/dev\/lodge-no-such-node" does not exist on the host/],
    [["bad", "unix-char", "source=/dev/loop0"], /is a block device, not a character device/],
  ];
  for (const name of ["b1", "b2"]) {
    const before = (await d.lxc(["config", "show", name])).stdout;
    for (const [args, re] of cases) {
      const r = await d.lxc(["config", "device", "add", name, ...args], { allowFail: true });
      assert.notEqual(r.code, 0, `${name}: ${args.join(" ")}`);
      assert.match(r.stderr, re, `${name}: ${args.join(" ")}`);
      const raw = await d.client.raw("PATCH", `/1.0/instances/${name}`, { devices: { bad: Object.fromEntries([["type", args[1]!], ...args.slice(2).map((a) => a.split("=", 2))]) } });
      assert.equal(raw.status, 400, `${name}: ${args.join(" ")} is a 400`);
    }
    assert.equal((await d.lxc(["config", "show", name])).stdout, before, `${name}: the record is unchanged`);
  }

  // A change that fails while being applied is undone as a whole: the good mount of the same
  // request goes too, and the record stays as it was.
  const pid = await pidOf(d, "b1");
  const r = await d.client.raw("PATCH", "/1.0/instances/b1", {
    devices: { good: { type: "disk", source: share, path: "/mnt/good" }, clash: { type: "disk", source: share, path: "/etc/passwd" } },
  });
  assert.equal(r.status, 400);
  assert.match(r.body.type === "error" ? r.body.error : "", /Failed to update running instance "b1": .*\/etc\/passwd.*not a directory/);
  assert.equal((await sh(d, "b1", "grep ' /mnt/good ' /proc/self/mountinfo")).stdout, "", "the good mount was undone");
  assert.equal((await sh(d, "b1", "head -1 /etc/passwd")).stdout.startsWith("root:"), true);
  assert.deepEqual(await devices(d, "b1"), []);
  assert.equal(await pidOf(d, "b1"), pid);

  await d.lxc(["delete", "--force", "b1", "b2"]);
  await assertNothingLeft(d, share);
});
