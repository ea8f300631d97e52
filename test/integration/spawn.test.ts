/**
 * The daemon's vfork-based spawn (native/napi/spawn.c, src/sys/spawn.ts) behaves as
 * child_process.spawn does for what the daemon uses: pipes, exit codes and signals, the
 * environment and working directory, extra descriptors, signals reset to their defaults, a
 * missing program, and no zombie left behind; and a program run from its sealed copy. Needs the built native module (npm run build).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn as forkSpawn } from "node:child_process";
import { appendFileSync, openSync, closeSync, readdirSync, readFileSync, readlinkSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { nativeCalls } from "../../src/sys/native.js";
import { sealedBinary } from "../../src/sys/sealed-binary.js";
import { spawnProcess, resolveProgram, type SpawnedChild } from "../../src/sys/spawn.js";

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  events: string[];
}

function collect(child: SpawnedChild): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    const events: string[] = [];
    child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("exit", () => events.push("exit"));
    child.on("close", (code: number | null, signal: NodeJS.Signals | null) => {
      events.push("close");
      resolve({ code, signal, stdout, stderr, events });
    });
  });
}

test("spawn: the native module is built and used (not child_process)", async () => {
  assert.equal(typeof nativeCalls()?.spawn, "function", "dist/lodge-native.node must export spawn: run npm run build");
  const child = spawnProcess("/bin/true", []);
  assert.equal(child.constructor.name, "NativeChild");
  assert.equal((await collect(child)).code, 0);
});

test("spawn: stdout and stderr apart, the exit code, exit before close", async () => {
  const child = spawnProcess("/bin/sh", ["-c", "echo out; echo err >&2; exit 7"]);
  assert.ok(child.pid! > 0);
  const o = await collect(child);
  assert.deepEqual(o, { code: 7, signal: null, stdout: "out\n", stderr: "err\n", events: ["exit", "close"] });
  assert.equal(child.exitCode, 7);
});

test("spawn: stdin is piped in and its end is seen", async () => {
  const child = spawnProcess("/bin/sh", ["-c", "tr a-z A-Z; echo done"]);
  child.stdin!.end("hello\n");
  const o = await collect(child);
  assert.equal(o.stdout, "HELLO\ndone\n");
  assert.equal(o.code, 0);
});

test("spawn: a signal ends it and is reported by name", async () => {
  const child = spawnProcess("/bin/sleep", ["30"], { stdio: ["ignore", "ignore", "ignore"] });
  const done = collect(child);
  assert.equal(child.kill("SIGTERM"), true);
  const o = await done;
  assert.equal(o.code, null);
  assert.equal(o.signal, "SIGTERM");
  assert.equal(child.signalCode, "SIGTERM");
  assert.equal(child.kill("SIGTERM"), false, "no signal after the exit (the pid may be reused)");
});

test("spawn: only the given environment, the working directory, a session of its own", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "lodge-spawn-"));
  try {
    const child = spawnProcess("/bin/sh", ["-c", 'echo "$FOO|${HOME:-unset}|$(pwd)"; ps -o sid= -p $$; echo $$'], {
      env: { FOO: "bar baz", PATH: "/usr/bin:/bin" },
      cwd: dir,
      detached: true,
    });
    const o = await collect(child);
    const [first, sid, pid] = o.stdout.trim().split("\n").map((l) => l.trim());
    assert.equal(first, `bar baz|unset|${dir}`);
    assert.equal(sid, pid, "detached: the child leads its own session");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("spawn: signals Node ignores (SIGPIPE) are back to default, none blocked", async () => {
  const child = spawnProcess("/bin/sh", ["-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"]);
  const o = await collect(child);
  const ign = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(o.stdout)![1]}`);
  const blk = BigInt(`0x${/SigBlk:\s*([0-9a-f]+)/.exec(o.stdout)![1]}`);
  assert.equal(ign & (1n << 12n), 0n, "SIGPIPE (13) not ignored");
  assert.equal(blk, 0n);
});

test("spawn: descriptors land at the asked numbers, 'ignore' is /dev/null, nothing else leaks", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "lodge-spawn-"));
  try {
    const file = path.join(dir, "x");
    writeFileSync(file, "from fd 3\n");
    const fd = openSync(file, "r");
    try {
      const child = spawnProcess("/bin/sh", ["-c", "cat <&3; readlink /proc/self/fd/0"], { stdio: ["ignore", "pipe", "pipe", fd] });
      const o = await collect(child);
      assert.equal(o.stdout, "from fd 3\n/dev/null\n");
      // The descriptors of a running child: 0-3 and what this test process passes on to any
      // child (an fd it inherited without close-on-exec), exactly as child_process gives.
      const fdsOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
      const ours = spawnProcess("/bin/sleep", ["30"], { stdio: ["ignore", "pipe", "pipe", fd] });
      const theirs = forkSpawn("/bin/sleep", ["30"], { stdio: ["ignore", "pipe", "pipe", fd] });
      try {
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(fdsOf(ours.pid!), fdsOf(theirs.pid!));
        assert.deepEqual(fdsOf(ours.pid!).slice(0, 4), [0, 1, 2, 3]);
      } finally {
        const gone = Promise.all([ours, theirs].map((c) => new Promise((r) => c.once("exit", r))));
        ours.kill("SIGKILL");
        theirs.kill("SIGKILL");
        await gone;
      }
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("spawn: a program that is not there is an ENOENT error event, not a throw", async () => {
  const child = spawnProcess("lodge-no-such-program", [], { env: { PATH: "/usr/bin:/bin" } });
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => child.on("error", resolve));
  assert.equal(err.code, "ENOENT");
  const child2 = spawnProcess("/nonexistent/prog", []);
  const err2 = await new Promise<NodeJS.ErrnoException>((resolve) => child2.on("error", resolve));
  assert.equal(err2.code, "ENOENT");
});

test("spawn: bare names are found on the child's PATH", () => {
  assert.equal(resolveProgram("sh", "/nonexistent:/bin"), "/bin/sh");
  assert.equal(resolveProgram("sh", "/nonexistent"), undefined);
});

test("spawn: many at once, each reaped (no zombies left)", async () => {
  const children = Array.from({ length: 40 }, (_, i) => spawnProcess("/bin/sh", ["-c", `exit ${i % 5}`], { stdio: ["ignore", "ignore", "ignore"] }));
  const outcomes = await Promise.all(children.map(collect));
  assert.deepEqual(
    outcomes.map((o) => o.code),
    children.map((_, i) => i % 5),
  );
  const kids = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, "utf8").trim();
  const zombies = kids
    .split(/\s+/)
    .filter(Boolean)
    .filter((p) => /\) Z /.test(readFileSync(`/proc/${p}/stat`, "utf8")));
  assert.deepEqual(zombies, []);
});

test("spawn: a program run from its sealed copy runs as the copy, keeps no descriptor of it, and the copy cannot be written", async () => {
  const native = nativeCalls()!;
  const copy = sealedBinary(native, "/bin/sleep");
  assert.equal(sealedBinary(native, "/bin/sleep"), copy, "one copy per program, reused");
  // Low descriptors of the child are its stdio: the copy is run from wherever it is in ours.
  const child = spawnProcess("/bin/sleep", ["30"], { stdio: ["ignore", "pipe", "pipe"], executable: copy });
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.match(readlinkSync(`/proc/${child.pid}/exe`), /^\/memfd:sleep \(deleted\)$/);
    assert.deepEqual(readdirSync(`/proc/${child.pid}/fd`).map(Number).sort((a, b) => a - b).slice(0, 3), [0, 1, 2]);
    for (const fd of readdirSync(`/proc/${child.pid}/fd`)) assert.doesNotMatch(readlinkSync(`/proc/${child.pid}/fd/${fd}`), /memfd/);
  } finally {
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  }
  // Not even its creator, root, can change it: sealed against writes, truncation and growth.
  assert.throws(() => writeFileSync(`/proc/self/fd/${copy}`, "x"), { code: "EPERM" });
  assert.throws(() => appendFileSync(`/proc/self/fd/${copy}`, "x"), { code: "EPERM" });
  assert.equal(statSync(`/proc/self/fd/${copy}`).size, statSync("/bin/sleep").size);
});
