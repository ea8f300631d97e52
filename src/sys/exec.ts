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
}

/** Runs a host tool without a shell; throws CommandError on failure unless allowFail. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
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
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") reject(new Error(`${cmd} is not installed (not found on PATH)`));
      else reject(e);
    });
    child.on("close", (code, signal) => {
      const result = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (result.code !== 0 && !opts.allowFail) reject(new CommandError([cmd, ...args].join(" "), result));
      else resolve(result);
    });
    if (opts.input !== undefined) {
      child.stdin!.on("error", () => undefined); // a tool that exits without reading it all
      child.stdin!.end(opts.input);
    }
  });
}

/** Path of an executable on PATH, or undefined. */
export async function which(cmd: string): Promise<string | undefined> {
  return resolveProgram(cmd, process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin");
}
