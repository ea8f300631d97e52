/**
 * run()'s timeoutMs (src/sys/exec.ts): a command past it is killed with SIGKILL — SIGTERM is
 * not enough for a process that ignores it, or waits on a FUSE server that never answers — and
 * run() rejects naming the command, also when the command has exited but something it left
 * behind holds its output open. A command in time is untouched, and aborting still works.
 * Real processes through the daemon's spawn, as the daemon runs them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CommandError, CommandTimeoutError, run } from "../../src/sys/exec.js";

function tempDir(t: test.TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), "lodge-run-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The pid a command wrote to `file`, read once run() has returned. */
const pidIn = (file: string) => Number(readFileSync(file, "utf8").trim());

/** Gone, or a zombie nobody has reaped yet: either way, no longer running. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\S+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

test("run: past its timeout a command that ignores SIGTERM is killed, and the error names it", async (t) => {
  const pidFile = path.join(tempDir(t), "pid");
  const started = Date.now();
  // SIG_IGN survives exec: this sleep cannot be ended by SIGTERM.
  const err = await run("sh", ["-c", `trap '' TERM; echo $$ >${pidFile}; exec sleep 30`], { timeoutMs: 500 }).then(
    () => assert.fail("run() resolved"),
    (e: Error) => e,
  );
  const ms = Date.now() - started;
  assert.ok(err instanceof CommandTimeoutError, `${err.name}: ${err.message}`);
  assert.equal(err.message, `sh -c trap '' TERM; echo $$ >${pidFile}; exec sleep 30 timed out after 0.5 seconds and was killed`);
  assert.equal(err.timeoutMs, 500);
  assert.ok(ms >= 500 && ms < 2_000, `rejected after ${ms} ms`);
  const pid = pidIn(pidFile);
  assert.equal(existsSync(`/proc/${pid}`), false, `process ${pid} was killed and reaped before run() rejected`);
});

test("run: the timeout holds with allowFail too (a killed command is no result)", async () => {
  const err = await run("sleep", ["30"], { timeoutMs: 300, allowFail: true }).then(
    () => assert.fail("run() resolved"),
    (e: Error) => e,
  );
  assert.ok(err instanceof CommandTimeoutError);
  assert.match(err.message, /^sleep 30 timed out after 0\.3 seconds/);
});

test("run: a command that exited but left its output held open is given up at the timeout", async (t) => {
  const pidFile = path.join(tempDir(t), "pid");
  // The background sleep keeps stdout open after sh has exited, so run() never sees its end.
  const leftover = run("sh", ["-c", `sleep 30 & echo $! >${pidFile}`], { timeoutMs: 500 });
  t.after(() => {
    try {
      process.kill(pidIn(pidFile), "SIGKILL");
    } catch {
      /* gone already */
    }
  });
  const err = await leftover.then(
    () => assert.fail("run() resolved"),
    (e: Error) => e,
  );
  assert.ok(err instanceof CommandTimeoutError, `${err.name}: ${err.message}`);
  assert.ok(running(pidIn(pidFile)), "what the command left behind is not ours to kill");
});

test("run: a command that ends in time is not touched by its timeout", async () => {
  assert.deepEqual(await run("sh", ["-c", "sleep 0.2; echo done"], { timeoutMs: 5_000 }), { code: 0, stdout: "done\n", stderr: "" });
  const failed = await run("sh", ["-c", "echo bad >&2; exit 3"], { timeoutMs: 5_000 }).catch((e: Error) => e);
  assert.ok(failed instanceof CommandError, "a failure is still a CommandError, not a timeout");
  assert.equal((await run("sh", ["-c", "exit 4"], { timeoutMs: 5_000, allowFail: true })).code, 4);
  const missing = await run("lodge-no-such-program", [], { timeoutMs: 5_000, env: { PATH: "/usr/bin:/bin" } }).catch((e: Error) => e);
  assert.match((missing as Error).message, /lodge-no-such-program is not installed/);
});

test("run: aborting still ends the command with SIGTERM and rejects with an AbortError", async (t) => {
  const pidFile = path.join(tempDir(t), "pid");
  const ac = new AbortController();
  const p = run("sh", ["-c", `echo $$ >${pidFile}; exec sleep 30`], { signal: ac.signal, timeoutMs: 10_000 });
  for (let i = 0; i < 100 && !(existsSync(pidFile) && pidIn(pidFile) > 0); i++) await new Promise((r) => setTimeout(r, 20));
  const pid = pidIn(pidFile);
  ac.abort();
  const err = await p.then(
    () => assert.fail("run() resolved"),
    (e: Error) => e,
  );
  assert.equal(err.name, "AbortError");
  for (let i = 0; i < 100 && running(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(running(pid), false, "the aborted command was ended");
});
