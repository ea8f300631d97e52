/**
 * A container's console (/dev/console, tty 0), attached through liblxc's own `lxc-console`.
 *
 * lxc-console insists on a terminal, and Node has no pseudo-terminal API, so util-linux
 * `script` makes one on the host and runs lxc-console on it, as the liblxc driver does for
 * interactive exec. lxc-console asks the container's monitor for the console and relays
 * between it and its terminal; it also copies its terminal's size to the console on SIGWINCH,
 * so a resize is `stty` on the host pty. The escape key is disabled as LXD disables it
 * (the `lxc` client handles its own detach key): `-e '['` makes lxc-console's escape a
 * negative code, which it treats as "no escape" (and then prints no banner either).
 *
 * Console output also goes to the log file liblxc keeps (lxc.console.logfile), which is what
 * GET .../console returns.
 *
 * Known limit (liblxc 5.0): lxc-console attaches through a proxy pty the monitor makes, and
 * a window size set on lxc-console's terminal reaches that proxy, not the container's
 * /dev/console, which keeps the size it had (0x0 for a container started with -d).
 */
import { spawnProcess as spawn, type SpawnedChild as ChildProcess } from "../sys/spawn.js";
import { readFile, readlink } from "node:fs/promises";
import type { Readable, Writable } from "node:stream";
import { run, which } from "../sys/exec.js";

export interface ConsoleTarget {
  /** The liblxc container name and its lxcpath. */
  name: string;
  lxcpath: string;
  cols: number;
  rows: number;
}

export interface ConsoleProcess {
  readonly stdin: Writable;
  /** What the console prints (the terminal's output). */
  readonly stdout: Readable;
  /** Resolves when the relay ends (detached, or the container stopped). */
  readonly exited: Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  /** Detaches: ends the relay (the console and what runs on it stay). */
  close(): void;
}

const KILL_AFTER_MS = 2_000;
/** How long lxc-console may take to attach before input is let through anyway. */
const READY_TIMEOUT_MS = 3_000;

let tools: Promise<{ console: string; script: string }> | undefined;

function consoleTools(): Promise<{ console: string; script: string }> {
  return (tools ??= (async () => {
    const [lxcConsole, script] = await Promise.all([which("lxc-console"), which("script")]);
    if (!lxcConsole) throw new Error("lxc-console is not installed: install the lxc package");
    if (!script) throw new Error("The console needs util-linux's script, which is not installed");
    return { console: lxcConsole, script };
  })().catch((e: unknown) => {
    tools = undefined;
    throw e;
  }));
}

/** Quotes one word for /bin/sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** lxc-console's argv (without the program): tty 0 is the console. */
export function consoleArgs(t: Pick<ConsoleTarget, "name" | "lxcpath">): string[] {
  return ["-n", t.name, "-P", t.lxcpath, "-t", "0", "-e", "["];
}

/** Resolves once the console is attached and takes input. */
export async function attachConsole(t: ConsoleTarget): Promise<ConsoleProcess> {
  const bin = await consoleTools();
  const command = [bin.console, ...consoleArgs(t)].map(shQuote).join(" ");
  const child = spawn(bin.script, ["--quiet", "--return", "--command", command, "/dev/null"], {
    cwd: "/",
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", SHELL: "/bin/sh" },
    stdio: ["pipe", "pipe", "ignore"],
  });
  child.stdin!.on("error", () => undefined);
  const exited = new Promise<void>((resolve) => {
    child.once("error", () => resolve());
    child.once("close", () => resolve());
  });

  const setSize = async (cols: number, rows: number) => {
    if (!(cols > 0 && rows > 0)) return;
    const dev = await ptyOf(child);
    if (dev) await run("stty", ["-F", dev, "cols", String(Math.floor(cols)), "rows", String(Math.floor(rows))], { allowFail: true });
  };
  // Ready once lxc-console has put its terminal in raw mode: it sets the mode with TCSAFLUSH,
  // which drops input written before, so the caller holds input until then. By then it
  // watches SIGWINCH too, which the kernel sends when the size is set (0x0 before): that is
  // when lxc-console copies the size to the console.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (let delay = 1; Date.now() < deadline; delay = Math.min(delay * 2, 50)) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const dev = await ptyOf(child);
    const mode = dev ? await run("stty", ["-F", dev], { allowFail: true }).catch(() => undefined) : undefined;
    if (mode && /(^|\s)-icanon(\s|$)/.test(mode.stdout)) break;
    await new Promise((r) => setTimeout(r, delay));
  }
  await setSize(t.cols, t.rows);

  return {
    stdin: child.stdin!,
    stdout: child.stdout!,
    exited,
    resize: setSize,
    close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // SIGTERM lets script take lxc-console down with it; SIGKILL if it lingers.
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
      timer.unref();
      void exited.then(() => clearTimeout(timer));
    },
  };
}

/** The host pty script made: its child's stdin. */
async function ptyOf(child: ChildProcess): Promise<string | undefined> {
  if (!child.pid) return undefined;
  const kids = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").catch(() => "");
  const kid = kids.trim().split(/\s+/)[0];
  if (!kid) return undefined;
  const dev = await readlink(`/proc/${kid}/fd/0`).catch(() => undefined);
  return dev?.startsWith("/dev/pts/") ? dev : undefined;
}
