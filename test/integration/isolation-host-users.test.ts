import test from "node:test";
import assert from "node:assert/strict";
import { chmod, lstat, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";

// A host user must reach nothing of an instance's data under LODGE_DIR. Under an idmapped
// rootfs a file that container root owns is stored as host uid 0, set-uid bit included: a
// host user who could reach one would run it as host root (issue 8, item 1).

/** Every path under dir (lstat, never following links). */
async function walk(dir: string, out: string[] = []): Promise<string[]> {
  out.push(dir);
  if (!(await lstat(dir)).isDirectory()) return out;
  for (const e of await readdir(dir)) await walk(join(dir, e), out);
  return out;
}

/** The paths that `nobody` can reach (test -e succeeds), asked in one shell. */
async function reachableByNobody(paths: string[]): Promise<string[]> {
  const r = await runCommand("runuser", ["-u", "nobody", "--", "sh", "-c", 'while IFS= read -r p; do [ -e "$p" ] && printf "%s\\n" "$p"; done; true'], {
    input: paths.join("\n") + "\n",
  });
  return r.stdout.split("\n").filter(Boolean);
}

/**
 * What a host user may reach under LODGE_DIR: the directories that lead to the socket and to
 * the instances (0711: passable, not listable), and the entries right in them (a name can be
 * looked at, not entered: each instance's door is 0100, its root's alone; the database and
 * image store are 0700; the socket is 0660). Nothing further down.
 */
const PASSABLE = ["", "containers", "devices", "mounts", "storage-pools", "storage-pools/default"].concat(
  ["containers", "virtual-machines", "images", "custom"].map((t) => `storage-pools/default/${t}`),
);
function allowed(dir: string, p: string): boolean {
  const rel = (x: string) => (x === dir ? "" : x.slice(dir.length + 1));
  return PASSABLE.includes(rel(p)) || PASSABLE.includes(rel(dirname(p)));
}

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

test("a set-uid root file made in a container cannot be reached or run by a host user", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c1"]);
  t.after(() => d.lxc(["delete", "--force", "c1"], { allowFail: true }));
  // A unix-char device gives the container a directory under LODGE_DIR/devices too.
  await d.lxc(["config", "device", "add", "c1", "null2", "unix-char", "source=/dev/null", "path=/dev/null2", "mode=0666"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "mkdir -p /tmp/s && cp /bin/busybox /tmp/s/busybox && chown 0:0 /tmp/s/busybox && chmod 4755 /tmp/s/busybox"]);

  const all = await walk(d.dir);
  const copies = all.filter((p) => p.endsWith("/tmp/s/busybox"));
  assert.ok(copies.length > 0, "the container's file is stored under LODGE_DIR");
  for (const p of copies) {
    const st = await lstat(p);
    assert.ok(st.mode & 0o4000, `${p} kept its set-uid bit on the host`);
    const run = await runCommand("runuser", ["-u", "nobody", "--", p, "id", "-u"], { allowFail: true });
    assert.notEqual(run.code, 0, `nobody ran ${p}: ${run.stdout}`);
  }
  const nodes = all.filter((p) => p.includes("/devices/") && p.endsWith("unix.null2"));
  assert.equal(nodes.length, 1, "the device node is made on the host");
  const open = await runCommand("runuser", ["-u", "nobody", "--", "sh", "-c", `: > ${nodes[0]}`], { allowFail: true });
  assert.notEqual(open.code, 0, "nobody cannot open the container's device node");

  const reachable = await reachableByNobody(all);
  assert.deepEqual(reachable.filter((p) => !allowed(d.dir, p)), [], "nobody reaches nothing else under LODGE_DIR");
  // The container still works through its closed doors: restart and exec.
  await d.lxc(["restart", "c1"]);
  assert.equal((await d.lxc(["exec", "c1", "--", "ls", "/tmp/s"])).stdout, "busybox\n");
});

test("instance directories an older Lodge left open are closed at daemon start, running or not", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "run1"]);
  await d.lxc(["init", "bb", "stop1"]);
  t.after(() => d.lxc(["delete", "--force", "run1", "stop1"], { allowFail: true }));
  await d.lxc(["config", "device", "add", "run1", "null2", "unix-char", "source=/dev/null", "path=/dev/null2"]);
  await d.stop();

  // The layout of sessions before: volume and device directories 0711, owned by root.
  const opened = [
    join(d.dir, "storage-pools/default/containers/run1"),
    join(d.dir, "storage-pools/default/containers/stop1"),
    join(d.dir, "devices/run1"),
  ];
  for (const p of opened) {
    await runCommand("chown", ["0:0", p]);
    await chmod(p, 0o711);
  }
  assert.ok((await reachableByNobody([join(opened[0]!, "rootfs/bin/busybox")])).length === 1, "the old layout is open");

  await d.launch();
  const reachable = await reachableByNobody(await walk(d.dir));
  assert.deepEqual(reachable.filter((p) => !allowed(d.dir, p)), [], "nothing is left open after the daemon starts");
  assert.match(await d.logFile(), /closed instance directories that host users could reach/);
  // Both still work: the running one execs, the stopped one starts.
  assert.equal((await d.lxc(["exec", "run1", "--", "echo", "ok"])).stdout, "ok\n");
  await d.lxc(["start", "stop1"]);
  assert.equal((await d.lxc(["exec", "stop1", "--", "echo", "ok"])).stdout, "ok\n");
});
