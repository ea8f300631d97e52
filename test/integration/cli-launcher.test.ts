// The `lodge` launcher (native/launcher/lodge.c) and its warm spare (src/cli/worker.ts): a
// command handed to a spare behaves exactly as the plain `node dist/lodge.js` would —
// output, exit codes, stdin, working directory, environment, signals — and the spare's socket
// is private, replaced when stale, and gone when idle. Each test has its own XDG_RUNTIME_DIR,
// so its spares are its own; every spare is killed at the end.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, TestDaemon, runCommand, type RunOpts } from "../helpers/daemon.js";

const LAUNCHER = join(ROOT, "dist/lodge");

interface Env {
  runtime: string;
  dir: string;
  run(args: string[], opts?: RunOpts & { cwd?: string }): ReturnType<typeof runCommand>;
  spares(): Promise<number[]>;
  waitSpare(): Promise<number>;
}

async function launcherEnv(t: TestContext, d: TestDaemon, extra: Record<string, string> = {}): Promise<Env> {
  const runtime = await mkdtemp(join(tmpdir(), "lodge-xdg-"));
  await chmod(runtime, 0o700);
  const dir = join(runtime, "lodge");
  const spares = async () => {
    const out: number[] = [];
    for (const p of await readdir("/proc")) {
      if (!/^\d+$/.test(p)) continue;
      const cmd = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
      if (cmd.includes("lodge-worker.js") && cmd.includes(runtime)) out.push(Number(p));
    }
    return out;
  };
  t.after(async () => {
    for (const pid of await spares()) process.kill(pid, "SIGKILL");
    await rm(runtime, { recursive: true, force: true });
  });
  const env = { LODGE_DIR: d.dir, XDG_RUNTIME_DIR: runtime, ...extra };
  return {
    runtime,
    dir,
    spares,
    run: (args, opts = {}) => runCommand(LAUNCHER, args, { ...opts, env: { ...env, ...opts.env } }),
    async waitSpare() {
      // Ready = its socket is there (it listens before anything else can connect).
      for (let i = 0; i < 200; i++) {
        const socks = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(".sock"));
        const pids = await spares();
        if (socks.length === 1 && pids.length === 1) return pids[0]!;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error("no spare came up");
    },
  };
}

/** Runs the launcher with a working directory (runCommand has none). */
function runIn(cwd: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(LAUNCHER, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout }));
  });
}

test("the first command runs cold and leaves a spare; the next one is served by it, with the same output", async (t) => {
  const d = await TestDaemon.start(t);
  const e = await launcherEnv(t, d);
  const plain = await d.lodge(["query", "/1.0"]);
  const cold = await e.run(["query", "/1.0"]);
  assert.equal(cold.stdout, plain.stdout);
  const spare = await e.waitSpare();
  const st = await readdir(e.dir);
  assert.ok(st.some((f) => f.endsWith(".sock")), `a socket in ${st}`);
  const warm = await e.run(["query", "/1.0"]);
  assert.equal(warm.stdout, plain.stdout);
  // The command left nothing running, so the spare waits again, listening before its launcher
  // ended: commands back to back pay Node's start-up once, and no second spare starts.
  assert.ok((await readdir(e.dir)).some((f) => f.endsWith(".sock")), "the spare listens again as soon as the command is done");
  assert.deepEqual(await e.spares(), [spare], "the same spare waits for the next command");
  for (const args of [["list", "--format", "csv"], ["query", "/1.0"], ["version"]]) {
    const warmAgain = await e.run(args);
    assert.equal(warmAgain.stdout, (await d.lodge(args)).stdout, `${args.join(" ")} gives the same output warm`);
  }
  assert.deepEqual(await e.spares(), [spare], "one spare served them all");
});

test("warm: exit codes, stdin, the working directory and the caller's environment are the caller's", async (t) => {
  const d = await TestDaemon.start(t);
  const other = await TestDaemon.start(t);
  const e = await launcherEnv(t, d);
  await e.run(["version"]);
  await e.waitSpare();
  // A usage error is 2, an API error 1, as with the plain entry.
  assert.equal((await e.run(["no-such-verb"], { allowFail: true })).code, 2);
  await e.waitSpare();
  const missing = await e.run(["query", "/1.0/instances/nothere"], { allowFail: true });
  assert.equal(missing.code, (await d.lodge(["query", "/1.0/instances/nothere"], { allowFail: true })).code);
  assert.match(missing.stderr, /not found/i);
  await e.waitSpare();
  // stdin: the request body read from "-".
  await e.run(["query", "-X", "PATCH", "-d", "-", "/1.0"], { input: JSON.stringify({ config: { "user.from-stdin": "yes" } }) });
  assert.equal((await d.client.get<{ config: Record<string, string> }>("/1.0")).config["user.from-stdin"], "yes");
  await e.waitSpare();
  // The environment is the caller's: LODGE_DIR picks the other daemon.
  await e.run(["query", "-X", "PATCH", "-d", '{"config":{"user.which":"other"}}', "/1.0"], { env: { LODGE_DIR: other.dir } });
  assert.equal((await other.client.get<{ config: Record<string, string> }>("/1.0")).config["user.which"], "other");
  assert.equal((await d.client.get<{ config: Record<string, string> }>("/1.0")).config["user.which"], undefined);
  await e.waitSpare();
  // The working directory: relative paths name the caller's files.
  const work = await mkdtemp(join(tmpdir(), "lodge-cwd-"));
  t.after(() => rm(work, { recursive: true, force: true }));
  await writeFile(join(work, "bb.yaml"), await readFile(join(ROOT, "images/busybox.yaml")));
  const r = await runIn(work, ["image", "build", "bb.yaml", "-o", "out"], { LODGE_DIR: d.dir, XDG_RUNTIME_DIR: e.runtime });
  assert.equal(r.code, 0);
  assert.ok((await readdir(join(work, "out"))).some((f) => f.endsWith(".tar.xz")), "the image was written to the caller's ./out");
});

test("warm: Ctrl-C reaches the command and it ends as it would without a spare", async (t) => {
  const d = await TestDaemon.start(t);
  const e = await launcherEnv(t, d);
  const endOf = async (env: Record<string, string>) => {
    const child = spawn(LAUNCHER, ["monitor", "--type", "lifecycle"], {
      env: { ...process.env, LODGE_DIR: d.dir, XDG_RUNTIME_DIR: e.runtime, ...env },
      stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c));
    // Until the monitor shows an event, i.e. it is subscribed and printing.
    for (let i = 0; i < 100 && !out.includes("config-updated"); i++) {
      await d.client.patch("/1.0", { config: { "user.tick": String(i) } });
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(out, /config-updated/);
    child.kill("SIGINT");
    return new Promise<string>((r) => child.on("close", (code, signal) => r(`${code}/${signal}`)));
  };
  const cold = await endOf({ LODGE_CLI_WORKER: "0" });
  await e.run(["version"]);
  await e.waitSpare();
  const warm = await endOf({});
  assert.equal(warm, cold);
});

test("the spare's socket: private directory required, stale sockets replaced, idle spares leave, LODGE_CLI_WORKER=0 starts none, NODE_* variables keep spares apart", async (t) => {
  const d = await TestDaemon.start(t);
  // A directory others may enter is not used: every command runs cold and no spare starts.
  const open = await launcherEnv(t, d);
  await mkdir(open.dir, { mode: 0o777 });
  await chmod(open.dir, 0o777);
  // The launcher decides on a spare before it runs the command: a spare it starts leaves its
  // "<socket>.starting" mark (or, once listening, its socket) in the directory before the
  // launcher exits. So once the command is done, an empty directory proves no spare is coming.
  assert.equal((await open.run(["version"])).code, 0);
  assert.deepEqual(await readdir(open.dir), [], "no spare mark or socket in a directory others may enter");
  assert.deepEqual(await open.spares(), []);

  // LODGE_CLI_WORKER=0: plain Node, nothing in the background (not even the socket directory).
  const off = await launcherEnv(t, d, { LODGE_CLI_WORKER: "0" });
  assert.equal((await off.run(["version"])).code, 0);
  assert.deepEqual(await readdir(off.dir).catch((e: NodeJS.ErrnoException) => e.code), "ENOENT", "no spare directory, mark or socket");
  assert.deepEqual(await off.spares(), []);
  // The same check sees a spare that is started: without LODGE_CLI_WORKER=0, one comes.
  const on = await launcherEnv(t, d);
  assert.equal((await on.run(["version"])).code, 0);
  assert.notDeepEqual(await readdir(on.dir), [], "a started spare has left its mark or socket by the time the launcher exits");
  await on.waitSpare();

  // NODE_* variables are read by Node only when it starts: a spare serves only commands with
  // the very same ones; others get their own.
  const nodeVar = await launcherEnv(t, d, { NODE_OPTIONS: "--max-old-space-size=200" });
  await nodeVar.run(["version"]);
  const withOpts = await nodeVar.waitSpare();
  assert.match(await readFile(`/proc/${withOpts}/environ`, "utf8"), /NODE_OPTIONS=--max-old-space-size=200\0/);
  await nodeVar.run(["version"], { env: { NODE_OPTIONS: "--max-old-space-size=300" } });
  assert.ok((await nodeVar.spares()).includes(withOpts), "the spare of other NODE_OPTIONS did not serve it");
  for (let i = 0; i < 100 && (await nodeVar.spares()).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await nodeVar.spares()).length, 2, "a spare for each set of NODE_* variables");

  // A socket left by a dead spare (nothing listens): the command still works, a spare replaces it.
  const e = await launcherEnv(t, d, { LODGE_CLI_WORKER_IDLE: "2" });
  await e.run(["version"]);
  const first = await e.waitSpare();
  const sock = (await readdir(e.dir)).find((f) => f.endsWith(".sock"))!;
  process.kill(first, "SIGKILL");
  // Dead: gone from /proc, or a zombie waiting for its reaper.
  const dead = async () => !/^State:\s+[^Z]/m.test(await readFile(`/proc/${first}/status`, "utf8").catch(() => ""));
  for (let i = 0; i < 200 && !(await dead()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(await dead(), "the spare died");
  assert.ok((await readdir(e.dir)).includes(sock), "the dead spare's socket file is still there");
  // Nothing listens on it once the kernel has finished tearing the dead spare down (its
  // listening socket can outlive the zombie state by a moment): refused within a few tries.
  const refused = async () => {
    for (let i = 0; i < 50; i++) {
      const r = await new Promise<string>((res) => {
        const c = net.connect(join(e.dir, sock));
        c.once("connect", () => (c.destroy(), res("connected")));
        c.once("error", (err: NodeJS.ErrnoException) => res(err.code ?? "error"));
      });
      if (r !== "connected") return r;
      await new Promise((r2) => setTimeout(r2, 20));
    }
    return "connected";
  };
  assert.equal(await refused(), "ECONNREFUSED");
  assert.equal((await e.run(["version"])).code, 0);
  const second = await e.waitSpare();
  assert.notEqual(second, first);
  // Idle (LODGE_CLI_WORKER_IDLE=2 s): the spare leaves and takes its socket with it.
  for (let i = 0; i < 100 && (await e.spares()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(await e.spares(), []);
  assert.deepEqual((await readdir(e.dir)).filter((f) => f.endsWith(".sock")), []);
});

test("a spare killed while it was starting does not hold up the next one", async (t) => {
  const d = await TestDaemon.start(t);
  const e = await launcherEnv(t, d);
  await e.run(["version"]);
  await e.waitSpare();
  const sock = (await readdir(e.dir)).find((f) => f.endsWith(".sock"))!;
  for (const pid of await e.spares()) process.kill(pid, "SIGKILL");
  // What such a spare leaves: its socket (refused now) and its fresh "starting" mark, naming it.
  const dead = spawn("true");
  await new Promise((r) => dead.once("exit", r));
  await writeFile(join(e.dir, `${sock}.starting`), `${dead.pid}\n`);
  const r = await e.run(["version"]);
  assert.equal(r.code, 0);
  // The mark names a dead spare: a new one starts now, not after the mark's 30 s.
  const fresh = await e.waitSpare();
  assert.ok(fresh > 0);
});
