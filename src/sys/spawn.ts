/**
 * Starting host programs from the daemon without forking it. child_process forks, which copies
 * the page tables of the whole daemon while the event loop waits (~3 ms at 75 MB of memory, ~14
 * ms at 250 MB, and more as the daemon grows with its instances); the native module's spawn is a
 * vfork (posix_spawn), whose cost does not grow with the daemon. Every lxc-start, lxc-attach,
 * lxc-stop and file-API helper goes through here.
 *
 * The child looks like a ChildProcess to its users (pid, stdin/stdout/stderr, exitCode,
 * signalCode, kill, and the events error, exit and close), so call sites do not change shape.
 * Without the native module (not built), this is child_process.spawn.
 */
import { spawn as forkSpawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { accessSync, constants as fsConstants } from "node:fs";
import net from "node:net";
import { constants as osConstants } from "node:os";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { nativeCalls, type NativeCalls } from "./native.js";

export type StdioEntry = "pipe" | "ignore" | number;

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** One entry per child descriptor (default: all three piped). */
  stdio?: readonly StdioEntry[];
  /** A session and process group of its own. */
  detached?: boolean;
  /**
   * Run the program in this descriptor (a sealed copy, sealed-binary.ts) instead of the file
   * `cmd` names; `cmd` is still its argv[0].
   */
  executable?: number;
}

/** What the daemon uses of a child process; a ChildProcess is one too. */
export interface SpawnedChild extends EventEmitter {
  readonly pid?: number | undefined;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** The program's argv, its name first. */
  readonly spawnargs: string[];
  kill(signal?: NodeJS.Signals | number): boolean;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** Lookups of bare program names, by PATH and name. */
const resolved = new Map<string, string | undefined>();

/** The absolute path a bare name runs as under `PATH`, as execvp would find it. */
export function resolveProgram(cmd: string, PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"): string | undefined {
  if (cmd.includes("/")) return path.resolve(cmd);
  const key = `${PATH}\0${cmd}`;
  if (resolved.has(key)) return resolved.get(key);
  let hit: string | undefined;
  for (const dir of PATH.split(":")) {
    const candidate = path.join(dir || ".", cmd);
    try {
      accessSync(candidate, fsConstants.X_OK);
      hit = path.resolve(candidate);
      break;
    } catch {
      /* next */
    }
  }
  // Found programs are remembered; a missing one is looked for again next time (it may be installed).
  if (hit) resolved.set(key, hit);
  return hit;
}

class NativeChild extends EventEmitter implements SpawnedChild {
  pid: number | undefined;
  spawnargs: string[] = [];
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  private openStreams = 0;
  private exited = false;

  kill(signal: NodeJS.Signals | number = "SIGTERM"): boolean {
    if (this.pid === undefined || this.exited) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** A stream of ours whose end counts towards `close`. */
  track(s: net.Socket): net.Socket {
    this.openStreams++;
    s.once("close", () => {
      this.openStreams--;
      this.maybeClose();
    });
    return s;
  }

  onExit(code: number | null, signal: number | null): void {
    this.exited = true;
    this.exitCode = code;
    this.signalCode = signal === null ? null : (SIGNAL_NAMES.get(signal) ?? "SIGKILL");
    this.emit("exit", this.exitCode, this.signalCode);
    // As child_process: the child's stdin is of no more use; output nobody reads is drained so
    // its end (and `close`) comes.
    this.stdin?.destroy();
    for (const s of [this.stdout, this.stderr]) if (s && s.readableFlowing === null) s.resume();
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.exited && this.openStreams === 0) {
      this.openStreams = -1; // once
      this.emit("close", this.exitCode, this.signalCode);
    }
  }
}

function envList(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out.push(`${k}=${v}`);
  return out;
}

function spawnNative(native: NativeCalls, cmd: string, args: readonly string[], opts: SpawnOptions): SpawnedChild {
  const child = new NativeChild();
  child.spawnargs = [cmd, ...args];
  const env = opts.env ?? process.env;
  const stdio = opts.stdio ?? ["pipe", "pipe", "pipe"];
  const file = opts.executable ?? resolveProgram(cmd, env.PATH);
  if (file === undefined) {
    const e = Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: "ENOENT", errno: -2, syscall: `spawn ${cmd}`, path: cmd });
    process.nextTick(() => child.emit("error", e));
    return child;
  }
  const fds: number[] = [];
  const theirs: number[] = []; // pipe ends that are the child's alone, closed here after the spawn
  const ours: { index: number; fd: number }[] = [];
  try {
    stdio.forEach((s, i) => {
      if (s === "ignore") fds.push(-1);
      else if (typeof s === "number") fds.push(s);
      else {
        const [r, w] = native.pipe();
        const mine = i === 0 ? w : r;
        const child = i === 0 ? r : w;
        fds.push(child);
        theirs.push(child);
        ours.push({ index: i, fd: mine });
      }
    });
    child.pid = native.spawn(file, [cmd, ...args], envList(env), fds, opts.cwd ?? null, opts.detached ?? false, (code, signal) => child.onExit(code, signal));
  } catch (e) {
    for (const { fd } of ours) native.close(fd);
    process.nextTick(() => child.emit("error", e));
    return child;
  } finally {
    for (const fd of theirs) native.close(fd);
  }
  for (const { index, fd } of ours) {
    const s = child.track(new net.Socket({ fd, readable: index !== 0, writable: index === 0 }));
    if (index === 0) child.stdin = s;
    else if (index === 1) child.stdout = s;
    else if (index === 2) child.stderr = s;
    else s.destroy();
  }
  return child;
}

/** Starts `cmd` (a path, or a name looked up on the child's PATH) as child_process.spawn would. */
export function spawnProcess(cmd: string, args: readonly string[], opts: SpawnOptions = {}): SpawnedChild {
  const native = nativeCalls();
  if (native?.spawn) return spawnNative(native, cmd, args, opts);
  const stdio = [...(opts.stdio ?? ["pipe", "pipe", "pipe"])];
  if (opts.executable !== undefined && opts.executable < stdio.length) throw new Error("spawn: the program's descriptor is one of the child's");
  const file = opts.executable === undefined ? cmd : `/proc/self/fd/${opts.executable}`;
  return forkSpawn(file, args, { argv0: cmd, env: opts.env ?? process.env, cwd: opts.cwd, stdio, detached: opts.detached });
}
