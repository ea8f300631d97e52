import test, { after, before, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { InstanceFull } from "../../src/api/instance.js";
import type { Operation } from "../../src/api/operation.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { LODGE, TestDaemon, type RunResult } from "../helpers/daemon.js";

// `lodge` instance verbs against a real lodged with the busybox image. One daemon for the file;
// every test deletes the instances it made.
let d: TestDaemon;
let scratch: string;
before(async () => {
  d = await TestDaemon.start(undefined);
  scratch = await mkdtemp(join(tmpdir(), "lodge-cli-inst-"));
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
});
after(async () => {
  await d?.destroy();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const lodge = (args: string[], opts: { input?: string } = {}): Promise<RunResult> => d.lodge(args, { allowFail: true, input: opts.input });

async function ok(args: string[], opts?: { input?: string }): Promise<RunResult> {
  const r = await lodge(args, opts);
  assert.equal(r.code, 0, `lodge ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

async function names(): Promise<string[]> {
  return ((await d.client.get<string[]>("/1.0/instances")) ?? []).map((u) => u.split("/").pop()!).sort();
}

/** Deletes every instance when the test ends, whatever happened. */
function cleanInstances(t: TestContext): void {
  t.after(async () => {
    // Through the API, not the CLI under test, so a failing test still cleans up.
    for (const n of await names()) {
      await d.client.wait(await d.client.put<Operation>(`/1.0/instances/${n}/state`, { action: "stop", force: true })).catch(() => {});
      await d.client.wait(await d.client.delete<Operation>(`/1.0/instances/${n}`));
    }
  });
}

test("launch with a name and with a random one; init leaves it stopped", async (t) => {
  cleanInstances(t);
  const r = await ok(["launch", "bb", "c1", "-c", "user.role=db"]);
  assert.equal(r.stdout, "Creating c1\nStarting c1\n");
  const random = await ok(["launch", "bb"]);
  const m = /^Creating ([a-z]+-[a-z]+)\nStarting \1\n$/.exec(random.stdout);
  assert.ok(m, `a random adjective-noun name: ${random.stdout}`);
  assert.equal((await ok(["init", "bb", "i1"])).stdout, "Creating i1\n");
  assert.deepEqual(await names(), ["c1", "i1", m[1]!].sort());
  const states = (await ok(["list", "-f", "csv", "-c", "ns"])).stdout;
  assert.match(states, /^c1,RUNNING$/m);
  assert.match(states, /^i1,STOPPED$/m);
  assert.equal((await ok(["config", "get", "c1", "user.role"])).stdout, "db\n");
});

test("list: table, csv, json and yaml; columns; filters", async (t) => {
  cleanInstances(t);
  await ok(["launch", "bb", "web-1", "-c", "user.role=frontend"]);
  await ok(["init", "bb", "db-1", "-c", "user.role=db"]);

  const table = (await ok(["list"])).stdout;
  assert.match(table, /^\| NAME +\| STATE +\| IPV4 +\| IPV6 +\| TYPE +\| SNAPSHOTS \|$/m);
  assert.match(table, /^\| web-1 +\| RUNNING +\| +\| +\| CONTAINER +\| 0 +\|$/m);
  assert.match(table, /^\| db-1 +\| STOPPED +\|/m);

  assert.equal((await ok(["list", "-f", "csv", "-c", "nst"])).stdout, "db-1,STOPPED,CONTAINER\nweb-1,RUNNING,CONTAINER\n");
  assert.equal((await ok(["--format", "csv", "list", "-c", "n,user.role:ROLE"])).stdout, "db-1,db\nweb-1,frontend\n");
  const pids = (await ok(["list", "-f", "csv", "-c", "npmu"])).stdout;
  assert.match(pids, /^db-1,,,$/m);
  assert.match(pids, /^web-1,\d+,[\d.]+[KMG]?i?B,\d+s$/m);

  // Filters: config key=value (a regexp), a name prefix, a state.
  assert.equal((await ok(["list", "-f", "csv", "-c", "n", "user.role=db"])).stdout, "db-1\n");
  assert.equal((await ok(["list", "-f", "csv", "-c", "n", "user.role=front.*"])).stdout, "web-1\n");
  assert.equal((await ok(["list", "-f", "csv", "-c", "n", "web"])).stdout, "web-1\n");
  assert.equal((await ok(["list", "-f", "csv", "-c", "n", "status=stopped"])).stdout, "db-1\n");
  assert.equal((await ok(["list", "-f", "csv", "nothing-matches"])).stdout, "");

  const json = JSON.parse((await ok(["list", "--format", "json", "web"])).stdout) as InstanceFull[];
  assert.equal(json.length, 1);
  assert.equal(json[0]!.name, "web-1");
  assert.equal(json[0]!.status, "Running");
  assert.ok(json[0]!.state!.pid > 0, "json carries the state");
  const yaml = parseYaml((await ok(["list", "-f", "yaml"])).stdout) as InstanceFull[];
  assert.deepEqual(yaml.map((i) => i.name), ["db-1", "web-1"]);
  assert.equal(yaml[0]!.config["user.role"], "db");

  const bad = await lodge(["list", "-c", "nsZ"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown column shorthand "Z"/);
});

test("exec: separate streams, exit codes, stdin, --env, --cwd, --user", async (t) => {
  cleanInstances(t);
  await ok(["launch", "bb", "e1"]);
  const both = await ok(["exec", "e1", "--", "sh", "-c", "echo to-out; echo to-err >&2"]);
  assert.equal(both.stdout, "to-out\n");
  assert.equal(both.stderr, "to-err\n");
  const failed = await lodge(["exec", "e1", "--", "sh", "-c", "exit 7"]);
  assert.equal(failed.code, 7);
  assert.equal(failed.stderr, "");
  assert.equal((await ok(["exec", "e1", "--", "tr", "a-z", "A-Z"], { input: "shout\nagain\n" })).stdout, "SHOUT\nAGAIN\n");
  const big = "x".repeat(300_000) + "\n";
  assert.equal((await ok(["exec", "e1", "--", "wc", "-c"], { input: big })).stdout.trim(), String(big.length));
  assert.equal((await ok(["exec", "e1", "-n", "--", "cat"], { input: "ignored" })).stdout, "");
  const env = await ok(["exec", "e1", "--env", "FOO=bar", "--env", "B=x=y", "--cwd", "/tmp", "--", "sh", "-c", 'echo "$FOO $B $(pwd)"']);
  assert.equal(env.stdout, "bar x=y /tmp\n");
  assert.equal((await ok(["exec", "e1", "--user", "1000", "--group", "1000", "--", "id", "-u"])).stdout, "1000\n");
  const missing = await lodge(["exec", "e1", "--", "no-such-command"]);
  assert.notEqual(missing.code, 0);
});

/** Runs `lodge exec` inside a pty made by script(1), typing `input`; resolves with what was shown. */
function inPty(args: string[], input: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const cmd = [process.execPath, LODGE, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    const child = spawn("script", ["-qfec", cmd, "/dev/null"], { env: { ...process.env, LODGE_DIR: d.dir, TERM: "xterm" }, stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, output });
    });
    // Type one line at a time once the shell has printed its prompt.
    let sent = 0;
    const typeNext = () => {
      if (sent < input.length) child.stdin.write(input[sent++]!);
    };
    child.stdout.on("data", () => {
      if (/# $/.test(output.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, ""))) typeNext();
    });
  });
}

test("interactive exec through a pty: a shell answers and its exit code comes back", async (t) => {
  cleanInstances(t);
  await ok(["launch", "bb", "p1"]);
  const r = await inPty(["exec", "p1", "--", "sh"], ["echo $((6*7))\r", "tty; exit 3\r"]);
  assert.match(r.output, /\n42\r*\n/, r.output);
  assert.match(r.output, /\/dev\/pts\/\d+/, "the command has a terminal");
  assert.equal(r.code, 3);
  // -t without local terminals still gives the command a pty.
  assert.match((await ok(["exec", "-t", "p1", "--", "tty"])).stdout, /^\/dev\/pts\/\d+\r*\n$/);
});

test("stop, start, restart, pause and resume several instances", async (t) => {
  cleanInstances(t);
  await ok(["launch", "bb", "s1"]);
  await ok(["launch", "bb", "s2"]);
  const states = async () => (await ok(["list", "-f", "csv", "-c", "ns"])).stdout;
  await ok(["stop", "s1", "s2"]);
  assert.equal(await states(), "s1,STOPPED\ns2,STOPPED\n");
  await ok(["start", "s1", "s2"]);
  assert.equal(await states(), "s1,RUNNING\ns2,RUNNING\n");
  const pid = async () => (await d.client.get<{ pid: number }>("/1.0/instances/s1/state")).pid;
  const before = await pid();
  await ok(["restart", "s1"]);
  assert.notEqual(await pid(), before, "restart runs a new init");
  await ok(["pause", "s1"]);
  assert.equal(await states(), "s1,FROZEN\ns2,RUNNING\n");
  await ok(["resume", "s1"]);
  assert.equal((await ok(["exec", "s1", "--", "echo", "alive"])).stdout, "alive\n");
  await ok(["stop", "-f", "--timeout", "5", "s2"]);
  assert.equal(await states(), "s1,RUNNING\ns2,STOPPED\n");
  // One bad name fails the command, naming it, but the others are still done.
  const r = await lodge(["start", "nope", "s2"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nope: Instance "nope" not found/);
  assert.equal(await states(), "s1,RUNNING\ns2,RUNNING\n");
  const info = (await ok(["info", "s1"])).stdout;
  assert.match(info, /^Status: +RUNNING$/m);
  assert.match(info, /^PID: +\d+$/m);
  assert.match(info, /^Processes: +\d+$/m);
  assert.match(info, /Memory \(current\): [\d.]+[KMG]?i?B/);
  assert.match((await ok(["info", "s1", "--show-log"])).stdout, /\nLog:\n/);
});

test("config set, get, unset, show and edit; a bad key is refused by name", async (t) => {
  cleanInstances(t);
  await ok(["init", "bb", "k1"]);
  await ok(["config", "set", "k1", "user.a=1", "user.b=two words"]);
  await ok(["config", "set", "k1", "limits.memory", "64MiB"]);
  assert.equal((await ok(["config", "get", "k1", "user.b"])).stdout, "two words\n");
  assert.equal((await ok(["config", "get", "k1", "limits.memory"])).stdout, "64MiB\n");
  await ok(["config", "unset", "k1", "user.a"]);
  const shown = parseYaml((await ok(["config", "show", "k1"])).stdout) as { config: Record<string, string>; profiles: string[] };
  assert.equal(shown.config["user.a"], undefined);
  assert.equal(shown.config["user.b"], "two words");
  assert.deepEqual(shown.profiles, ["default"]);
  assert.ok(!("status" in shown), "only the editable fields");

  const bad = await lodge(["config", "set", "k1", "no.such.key=1"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no\.such\.key/);
  const unknown = await lodge(["config", "get", "ghost", "user.a"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /Instance "ghost" not found/);

  // edit reads YAML from stdin when it is not a terminal.
  const yamlText = (await ok(["config", "show", "k1"])).stdout.replace("user.b: two words", "user.b: edited\n  user.c: 3");
  await ok(["config", "edit", "k1"], { input: yamlText });
  assert.equal((await ok(["config", "get", "k1", "user.b"])).stdout, "edited\n");
  assert.equal((await ok(["config", "get", "k1", "user.c"])).stdout, "3\n");
  const refused = await lodge(["config", "edit", "k1"], { input: "name: other\n" });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /"name" cannot be edited/);
});

test("config device add/remove of a disk: the host directory shows up inside", async (t) => {
  cleanInstances(t);
  const share = join(scratch, "share");
  await mkdir(share, { recursive: true });
  // The container's root is an unprivileged host uid: it must be able to reach the directory.
  await chmod(scratch, 0o755);
  await writeFile(join(share, "hello"), "from the host\n");
  await ok(["launch", "bb", "v1"]);
  assert.equal((await ok(["config", "device", "add", "v1", "data", "disk", `source=${share}`, "path=/mnt/x"])).stdout, "Device data added to v1\n");
  assert.match((await ok(["config", "device", "list", "v1"])).stdout, /^data$/m);
  assert.deepEqual(parseYaml((await ok(["config", "device", "show", "v1"])).stdout), { data: { type: "disk", source: share, path: "/mnt/x" } });
  await ok(["restart", "v1"]);
  assert.equal((await ok(["exec", "v1", "--", "cat", "/mnt/x/hello"])).stdout, "from the host\n");
  const dup = await lodge(["config", "device", "add", "v1", "data", "disk", "source=/tmp", "path=/mnt/y"]);
  assert.equal(dup.code, 2);
  assert.match(dup.stderr, /Device "data" already exists/);
  await ok(["config", "device", "remove", "v1", "data"]);
  await ok(["restart", "v1"]);
  assert.notEqual((await lodge(["exec", "v1", "--", "cat", "/mnt/x/hello"])).code, 0);
  const gone = await lodge(["config", "device", "remove", "v1", "data"]);
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, /Device "data" does not exist/);
});

test("file push and pull: text and binary with modes, recursive, stdin/stdout, delete", async (t) => {
  cleanInstances(t);
  await ok(["launch", "bb", "f1"]);
  const bin = join(scratch, "blob.bin");
  const bytes = Buffer.alloc(200_000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
  await writeFile(bin, bytes);
  await chmod(bin, 0o640);
  await ok(["file", "push", bin, "f1/root/"]);
  assert.match((await ok(["exec", "f1", "--", "stat", "-c", "%a %s", "/root/blob.bin"])).stdout, /^640 200000$/m);
  const back = join(scratch, "blob.back");
  await ok(["file", "pull", "f1/root/blob.bin", back]);
  assert.ok((await readFile(back)).equals(bytes), "binary round trip");

  await ok(["file", "push", "--mode", "0600", "--uid", "1000", "-p", bin, "f1/new/deep/b.bin"]);
  assert.equal((await ok(["exec", "f1", "--", "stat", "-c", "%a %u", "/new/deep/b.bin"])).stdout, "600 1000\n");

  const tree = join(scratch, "tree");
  await mkdir(join(tree, "sub"), { recursive: true });
  await writeFile(join(tree, "a.txt"), "a\n");
  await writeFile(join(tree, "sub", "b.txt"), "b\n");
  await ok(["file", "push", "-r", tree, "f1/root/"]);
  assert.equal((await ok(["exec", "f1", "--", "cat", "/root/tree/a.txt", "/root/tree/sub/b.txt"])).stdout, "a\nb\n");
  const pulled = join(scratch, "pulled");
  await ok(["file", "pull", "-r", "f1/root/tree", pulled]);
  assert.equal(await readFile(join(pulled, "sub", "b.txt"), "utf8"), "b\n");

  await ok(["file", "push", "-", "f1/tmp/in.txt"], { input: "via stdin\n" });
  assert.equal((await ok(["file", "pull", "f1/tmp/in.txt", "-"])).stdout, "via stdin\n");
  await ok(["file", "edit", "f1/tmp/in.txt"], { input: "replaced\n" });
  assert.equal((await ok(["exec", "f1", "--", "cat", "/tmp/in.txt"])).stdout, "replaced\n");
  await ok(["file", "delete", "f1/tmp/in.txt"]);
  const missing = await lodge(["file", "pull", "f1/tmp/in.txt", join(scratch, "x")]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /\/tmp\/in\.txt/);
  await assert.rejects(stat(join(scratch, "x")));
  const badPath = await lodge(["file", "pull", "f1", scratch]);
  assert.equal(badPath.code, 2);
  assert.match(badPath.stderr, /Invalid instance path "f1"/);
});

test("rename (and move), delete with and without -f, errors name the bad thing", async (t) => {
  cleanInstances(t);
  await ok(["launch", "bb", "r1"]);
  const running = await lodge(["rename", "r1", "r2"]);
  assert.equal(running.code, 1);
  assert.match(running.stderr, /r1/);
  await ok(["stop", "r1"]);
  await ok(["rename", "r1", "r2"]);
  await ok(["move", "r2", "r3"]);
  assert.deepEqual(await names(), ["r3"]);
  await ok(["start", "r3"]);
  const refused = await lodge(["delete", "r3"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /Instance "r3" is running: stop it first or pass --force/);
  await ok(["delete", "-f", "r3"]);
  assert.deepEqual(await names(), []);

  await ok(["init", "bb", "stopped1"]);
  await ok(["delete", "stopped1"]);
  for (const args of [["start", "ghost"], ["exec", "ghost", "--", "true"], ["delete", "-f", "ghost"], ["info", "ghost"]]) {
    const r = await lodge(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, /Instance "ghost" not found/, args.join(" "));
  }
  const noImage = await lodge(["launch", "no-such-image", "x1"]);
  assert.equal(noImage.code, 1);
  assert.match(noImage.stderr, /Image "no-such-image" not found/);
  const badName = await lodge(["launch", "bb", "1bad"]);
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /Invalid instance name "1bad"/);
  assert.deepEqual(await names(), []);
});

test("help and completion cover the instance verbs", async () => {
  const help = (await ok(["--help"])).stdout;
  for (const v of ["launch", "init", "list", "start", "stop", "exec", "console", "file", "config", "rename", "move", "delete"])
    assert.match(help, new RegExp(`^  ${v}\\b`, "m"), v);
  assert.match((await ok(["exec", "--help"])).stdout, /--force-interactive/);
  const bash = (await ok(["completion", "bash"])).stdout;
  assert.match(bash, /\['lodge config device'\]='add remove rm list ls show get set unset'/);
  assert.match(bash, /\['lodge file'\]='push pull delete rm edit'/);
  assert.match(bash, /\['lodge list'\]='[^']*'/);
  assert.match(bash, /\['lodge stop'\]='[^']*'/);
});
