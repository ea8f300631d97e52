import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { access, readdir, readFile } from "node:fs/promises";
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

/** A cgroup file of the process `pid` (cgroup v1 controller hierarchy, else the unified one). */
async function cgroupValue(pid: number, controller: string, v1file: string, v2file: string): Promise<string> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, "utf8")).trim().split("\n");
  const v1 = lines.map((l) => l.split(":")).find(([, ctrls]) => ctrls!.split(",").includes(controller));
  if (v1) return (await readFile(`/sys/fs/cgroup/${controller}${v1[2]}/${v1file}`, "utf8")).trim();
  const v2 = lines.find((l) => l.startsWith("0::"))!.slice(3);
  return (await readFile(`/sys/fs/cgroup${v2}/${v2file}`, "utf8")).trim();
}

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
  // Applied to the running container at once, and lifted at once when unset.
  const pid = (await d.client.get<{ pid: number }>("/1.0/instances/k1/state")).pid;
  assert.equal(await cgroupValue(pid, "memory", "memory.limit_in_bytes", "memory.max"), String(128 * 1024 * 1024));
  assert.equal(await cgroupValue(pid, "pids", "pids.max", "pids.max"), "50");
  const bad = await d.lxc(["config", "set", "k1", "limits.sparkle", "1"], { allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unknown instance config key "limits.sparkle"/);
  const badValue = await d.lxc(["config", "set", "k1", "limits.memory", "lots"], { allowFail: true });
  assert.match(badValue.stderr, /limits.memory/);
  assert.equal((await d.lxc(["config", "get", "k1", "limits.memory"])).stdout.trim(), "128MiB");
  await d.lxc(["config", "unset", "k1", "limits.memory"]);
  await d.lxc(["config", "unset", "k1", "limits.processes"]);
  assert.ok(["max", "9223372036854771712"].includes(await cgroupValue(pid, "memory", "memory.limit_in_bytes", "memory.max")), "no memory limit");
  assert.equal(await cgroupValue(pid, "pids", "pids.max", "pids.max"), "max");
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
  const managed = await d.client.raw("POST", "/1.0/instances", {
    name: "c5",
    source: { type: "image", alias: "bb" },
    devices: { eth0: { type: "nic", network: "lxdbr0" } },
  });
  assert.equal(managed.status, 400, "a NIC on a managed network that does not exist is refused, not dropped");
  assert.match(managed.body.type === "error" ? managed.body.error : "", /Invalid device "eth0": network "lxdbr0" not found/);
  const proxy = await d.client.raw("POST", "/1.0/instances", {
    name: "c6",
    source: { type: "image", alias: "bb" },
    devices: { web: { type: "proxy", listen: "tcp:127.0.0.1:80800", connect: "tcp:127.0.0.1:80" } },
  });
  assert.equal(proxy.status, 400);
  assert.match(proxy.body.type === "error" ? proxy.body.error : "", /Invalid device "web": "listen" port 80800 is out of range/);
  assert.equal((await d.lxc(["list", "-f", "csv"])).stdout, "");
  await assertNoLeftovers(d);
  await assert.rejects(access(join(d.dir, "storage-pools/default/containers/c5")));
});

test("limits.memory=64MiB is enforced inside and memory use shows in state", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "m1", "-c", "limits.memory=64MiB", "-c", "limits.memory.swap=false"]);
  // busybox tail keeps all its input in memory: 200 MiB cannot fit in 64 MiB.
  const big = await d.lxc(["exec", "m1", "--", "sh", "-c", "head -c 200m /dev/zero | tail >/dev/null"], { allowFail: true });
  assert.equal(big.code, 137, "the allocating process is killed by the OOM killer");
  const small = await d.lxc(["exec", "m1", "--", "sh", "-c", "head -c 16m /dev/zero | tail | wc -c"]);
  assert.equal(small.stdout.trim(), String(16 * 1024 * 1024));
  const state = JSON.parse((await d.lxc(["query", "/1.0/instances/m1/state"])).stdout) as {
    memory: { usage: number; usage_peak: number };
  };
  assert.ok(state.memory.usage > 0, "memory usage is reported");
  assert.ok(state.memory.usage_peak >= 16 * 1024 * 1024, `peak ${state.memory.usage_peak} reflects the 16 MiB run`);
  assert.ok(state.memory.usage_peak <= 64 * 1024 * 1024, `peak ${state.memory.usage_peak} stays under the limit`);
  // Raised live, the bigger allocation fits.
  await d.lxc(["config", "set", "m1", "limits.memory", "512MiB"]);
  const after = await d.lxc(["exec", "m1", "--", "sh", "-c", "head -c 200m /dev/zero | tail | wc -c"]);
  assert.equal(after.stdout.trim(), String(200 * 1024 * 1024));
  await d.lxc(["delete", "--force", "m1"]);
});

test("interactive exec through a pty: a shell answers and its exit code comes back", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "i1"]);
  const lxc = `LXD_SOCKET=${d.socket} LXD_CONF=${join(d.dir, ".lxc-client")} lxc exec i1 -- sh`;
  // `script` gives lxc a terminal; we type only once the shell has shown its prompt.
  const child = spawn("script", ["-qec", lxc, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
  t.after(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
    // busybox ash asks the terminal where the cursor is; answer as a terminal would.
    if (c.toString().includes("\x1b[6n")) child.stdin.write("\x1b[1;5R");
  });
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, re);
  };
  const code = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  // The prompt, maybe followed by ash's cursor query or, once answered, its redraw (ESC[J).
  await waitFor(/# (\x1b\[(6n|J))?$/);
  await new Promise((r) => setTimeout(r, 500)); // let the shell take the cursor answer first
  child.stdin.write("echo $((6*7)); tty\r");
  await waitFor(/\/dev\/pts\/\d+[\s\S]*# (\x1b\[(6n|J))?$/);
  assert.match(out, /^42\r*$/m);
  await new Promise((r) => setTimeout(r, 500));
  child.stdin.write("exit 3\r");
  assert.equal(await code, 3);
  await d.lxc(["delete", "--force", "i1"]);
});

test("exec over the API with record-output: the output is kept as instance logs; without it no log directory is made", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "r1"]);
  const plain = await d.client.post<{ id: string }>("/1.0/instances/r1/exec", { command: ["true"], "wait-for-websocket": false, "record-output": false });
  assert.equal((await d.client.wait(plain.id, 10)).metadata?.return, 0);
  assert.deepEqual(await readdir(join(d.dir, "logs")).catch(() => []), [], "no log directory for an unrecorded exec");
  const rec = await d.client.post<{ id: string }>("/1.0/instances/r1/exec", {
    command: ["sh", "-c", "echo kept; echo also >&2"],
    "wait-for-websocket": false,
    "record-output": true,
  });
  const done = await d.client.wait(rec.id, 10);
  const output = done.metadata?.output as Record<string, string>;
  assert.match(output["1"]!, /^\/1\.0\/instances\/r1\/logs\/exec_[0-9a-f]+\.stdout$/);
  assert.equal((await d.lxc(["query", output["1"]!])).stdout.trim(), "kept");
  assert.equal((await d.lxc(["query", output["2"]!])).stdout.trim(), "also");
  await d.lxc(["delete", "--force", "r1"]);
});
