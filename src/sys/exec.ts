import { resolveProgram, spawnProcess } from "./spawn.js";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(`${command} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim().split("\n").slice(-3).join("; ")}`);
    this.name = "CommandError";
  }
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFail?: boolean;
  /**
   * Past this, the child is killed with SIGKILL (a process blocked on a filesystem that never
   * answers, FUSE for one, may outlive SIGTERM) and run() rejects with a CommandTimeoutError.
   */
  timeoutMs?: number;
  /**
   * The command is killed if lodged dies (PR_SET_PDEATHSIG through util-linux's setpriv): for
   * work whose half-made result the next start removes (copies into scratch trees), which an
   * orphan still writing would otherwise re-create behind that clean-up.
   */
  dieWithDaemon?: boolean;
}

/** A run() whose command outlived its timeoutMs and was killed. */
export class CommandTimeoutError extends Error {
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`${command} timed out after ${formatSeconds(timeoutMs)} and was killed`);
    this.name = "CommandTimeoutError";
  }
}

/** "15 seconds", "0.5 seconds", "1 second". */
export function formatSeconds(ms: number): string {
  const s = Math.round(ms / 100) / 10;
  return `${s} second${s === 1 ? "" : "s"}`;
}

/**
 * How long a killed child gets to be reaped before run() rejects anyway: a process in an
 * uninterruptible sleep (a dead NFS server, a stuck disk) ignores even SIGKILL, and the
 * caller, maybe holding an instance lock, must not wait on it.
 */
const KILL_GRACE_MS = 2_000;

/** Runs a host tool without a shell; throws CommandError on failure unless allowFail. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (opts.dieWithDaemon) return run("setpriv", ["--pdeathsig", "KILL", "--", cmd, ...args], { ...opts, dieWithDaemon: false });
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(Object.assign(new Error("The operation was aborted"), { name: "AbortError", code: "ABORT_ERR" }));
    const child = spawnProcess(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const onAbort = () => {
      child.kill("SIGTERM");
      reject(Object.assign(new Error("The operation was aborted"), { name: "AbortError", code: "ABORT_ERR" }));
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("exit", () => opts.signal?.removeEventListener("abort", onAbort));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        const fail = () => {
          // Our ends of its pipes go too, or they would stay open as long as its leftovers do.
          for (const s of [child.stdin, child.stdout, child.stderr]) s?.destroy();
          reject(new CommandTimeoutError([cmd, ...args].join(" "), opts.timeoutMs!));
        };
        // Exited, but its output is held open (by a process it left behind): nothing to kill.
        if (child.exitCode !== null || child.signalCode !== null) return fail();
        child.kill("SIGKILL");
        // Rejected once the child is reaped, so the caller's next step (a revert) never races
        // the killed command, or after the grace when even SIGKILL does not end it.
        const grace = setTimeout(fail, KILL_GRACE_MS);
        child.once("exit", () => {
          clearTimeout(grace);
          fail();
        });
      }, opts.timeoutMs);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // No streams when the spawn itself failed (a missing program): its "error" event says why.
    child.stdout?.on("data", (c: Buffer) => out.push(c));
    child.stderr?.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === "ENOENT") reject(new Error(`${cmd} is not installed (not found on PATH)`));
      else reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (result.code !== 0 && !opts.allowFail) reject(new CommandError([cmd, ...args].join(" "), result));
      else resolve(result);
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined); // a tool that exits without reading it all
      child.stdin.end(opts.input);
    }
  });
}

/** Path of an executable on PATH, or undefined. */
export async function which(cmd: string): Promise<string | undefined> {
  return resolveProgram(cmd, process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin");
}
