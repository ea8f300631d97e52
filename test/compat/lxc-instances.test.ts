import test from "node:test";
import assert from "node:assert/strict";
import { access, readdir } from "node:fs/promises";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// The real `lxc` client (Debian's lxd-client 5.0.2) driving containers on lodged.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  return d;
}

/** What a test may leave behind: nothing of its instances on disk or in the process table. */
async function assertNoLeftovers(d: TestDaemon) {
  const list = (dir: string) => readdir(join(d.dir, dir)).catch(() => [] as string[]);
  assert.deepEqual(await list("containers"), [], "no liblxc artefacts");
  assert.deepEqual(await list("storage-pools/default/containers"), [], "no volumes");
  assert.deepEqual(await list("logs"), [], "no logs");
  const ps = await import("node:child_process").then((m) => m.execFileSync("ps", ["-eo", "args"]).toString());
  assert.ok(!ps.includes(join(d.dir, "containers")), "no liblxc monitor of this daemon left");
}

test("launch, list in every format, exec with exit codes and separate streams", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c1"]);
  const table = (await d.lxc(["list"])).stdout;
  assert.match(table, /\| c1 +\| RUNNING +\|/);
  assert.match((await d.lxc(["list", "-f", "csv", "-c", "ns"])).stdout, /^c1,RUNNING$/m);
  const json = JSON.parse((await d.lxc(["list", "-f", "json"])).stdout) as { name: string; status: string; state: { pid: number } }[];
  assert.equal(json[0]!.name, "c1");
  assert.equal(json[0]!.status, "Running");
  assert.ok(json[0]!.state.pid > 0);

  const ok = await d.lxc(["exec", "c1", "--", "sh", "-c", "echo to-out; echo to-err >&2"]);
  assert.equal(ok.stdout, "to-out\n");
  assert.equal(ok.stderr, "to-err\n");
  const failed = await d.lxc(["exec", "c1", "--", "sh", "-c", "exit 7"], { allowFail: true });
  assert.equal(failed.code, 7);
  const input = await d.lxc(["exec", "c1", "--", "tr", "a-z", "A-Z"], { input: "shout\n" });
  assert.equal(input.stdout, "SHOUT\n");
  const env = await d.lxc(["exec", "c1", "--env", "FOO=bar", "--cwd", "/tmp", "--", "sh", "-c", 'echo "$FOO $(pwd) $(hostname)"']);
  assert.equal(env.stdout, "bar /tmp c1\n");
  await d.lxc(["delete", "--force", "c1"]);
  await assertNoLeftovers(d);
});

test("unprivileged by default: uid 0 inside is an unprivileged host uid", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "u1"]);
  const map = (await d.lxc(["exec", "u1", "--", "cat", "/proc/self/uid_map"])).stdout.trim().split(/\s+/).map(Number);
  assert.equal(map[0], 0);
  assert.ok(map[1]! > 0, `uid 0 maps to host uid ${map[1]}`);
  const hostPid = JSON.parse((await d.lxc(["query", "/1.0/instances/u1/state"])).stdout).pid as number;
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${hostPid}/status`, "utf8");
  assert.match(status, new RegExp(`^Uid:\\s+${map[1]}\\s`, "m"), "the container's init runs as that host uid");
  await d.lxc(["delete", "--force", "u1"]);
});

test("stop, start, restart, pause and resume; state follows", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "s1"]);
  const state = async () => (await d.lxc(["list", "-f", "csv", "-c", "s", "s1"])).stdout.trim();
  await d.lxc(["stop", "s1"]);
  assert.equal(await state(), "STOPPED");
  await d.lxc(["start", "s1"]);
  assert.equal(await state(), "RUNNING");
  const pid1 = JSON.parse((await d.lxc(["query", "/1.0/instances/s1/state"])).stdout).pid;
  await d.lxc(["restart", "s1"]);
  const pid2 = JSON.parse((await d.lxc(["query", "/1.0/instances/s1/state"])).stdout).pid;
  assert.notEqual(pid1, pid2, "restart runs a new init");
  await d.lxc(["pause", "s1"]);
  assert.equal(await state(), "FROZEN");
  await d.lxc(["start", "s1"]); // lxc resumes a frozen instance on start
  assert.equal(await state(), "RUNNING");
  assert.equal((await d.lxc(["exec", "s1", "--", "echo", "alive"])).stdout, "alive\n");
  const running = await d.lxc(["delete", "s1"], { allowFail: true });
  assert.notEqual(running.code, 0);
  assert.match(running.stderr, /running|stop/i);
  await d.lxc(["stop", "--force", "s1"]);
  await d.lxc(["delete", "s1"]);
  assert.equal((await d.lxc(["list", "-f", "csv"])).stdout, "");
  await assertNoLeftovers(d);
});

test("config set/unset of limits and user keys; unknown keys are refused by name", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "k1"]);
  await d.lxc(["config", "set", "k1", "user.owner", "alice"]);
  await d.lxc(["config", "set", "k1", "limits.memory", "128MiB"]);
  await d.lxc(["config", "set", "k1", "limits.processes", "50"]);
  assert.equal((await d.lxc(["config", "get", "k1", "user.owner"])).stdout.trim(), "alice");
  assert.equal((await d.lxc(["config", "get", "k1", "limits.memory"])).stdout.trim(), "128MiB");
  await d.lxc(["config", "unset", "k1", "user.owner"]);
  assert.equal((await d.lxc(["config", "get", "k1", "user.owner"])).stdout.trim(), "");
  const bad = await d.lxc(["config", "set", "k1", "limits.sparkle", "1"], { allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unknown instance config key "limits.sparkle"/);
  const badValue = await d.lxc(["config", "set", "k1", "limits.memory", "lots"], { allowFail: true });
  assert.match(badValue.stderr, /limits.memory/);
  assert.equal((await d.lxc(["config", "get", "k1", "limits.memory"])).stdout.trim(), "128MiB");
  await d.lxc(["delete", "--force", "k1"]);
});

test("bad input is refused with a clear error and leaves nothing behind", async (t) => {
  const d = await daemonWithImage(t);
  const cases: [string[], RegExp][] = [
    [["launch", "bb", "1bad"], /Invalid instance name "1bad"/],
    [["launch", "bb", "under_score"], /Invalid instance name/],
    [["launch", "no-such-image", "c2"], /not found/i],
    [["launch", "bb", "c3", "-c", "bogus.key=1"], /Unknown instance config key "bogus.key"/],
    [["init", "bb", "c4", "-d", "root,size=1GB"], /./],
  ];
  for (const [args, re] of cases) {
    const r = await d.lxc(args, { allowFail: true });
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
  }
  const r = await d.client.raw("POST", "/1.0/instances", {
    name: "c5",
    source: { type: "image", alias: "bb" },
    devices: { eth0: { type: "nic", nictype: "bridged" } },
  });
  assert.equal(r.status, 400);
  assert.match(r.body.type === "error" ? r.body.error : "", /Invalid device "eth0": "parent" is required/);
  assert.equal((await d.lxc(["list", "-f", "csv"])).stdout, "");
  await assertNoLeftovers(d);
  await assert.rejects(access(join(d.dir, "storage-pools/default/containers/c5")));
});
