/**
 * Exec in a container: one `lxc-attach` spawned straight away, its pipes handed to the caller
 * (the exec websockets). No state is fetched first: if the container is not running,
 * lxc-attach says so and exits non-zero, which the caller sees through `exited`.
 *
 * liblxc's lxc-attach has no option for the working directory (it keeps the caller's path),
 * so a cwd other than "/" goes through `/bin/sh -c 'cd …'` inside the container.
 *
 * A pty: Node has no pseudo-terminal API, so util-linux `script` makes one on the host and
 * puts lxc-attach on it; lxc-attach, seeing a terminal, makes the container's own pty and
 * relays (and copies the window size on SIGWINCH). Resizing sets the host pty's size with
 * `stty`, and the kernel sends SIGWINCH.
 *
 * lxc-attach switches that host terminal to raw mode with TCSAFLUSH, which discards whatever
 * input the terminal holds at that moment: input given before then (a client pipes its stdin
 * at once) would be lost. So on a pty the input is held back until lxc-attach has set the
 * terminal up, which it does before it forks towards the container: its first child is the
 * sign (attach-ready.ts).
 */
import { spawnProcess as spawn } from "../../../sys/spawn.js";
import { readFile, readlink } from "node:fs/promises";
import { run } from "../../../sys/exec.js";
import type { ExecProcess, ExecRequest, ExecResult } from "../../driver.js";
import { attachReady, heldUntil } from "./attach-ready.js";

export interface AttachTarget {
  lxcAttach: string;
  /** util-linux script, for a pty; undefined when missing. */
  script?: string;
  /** coreutils stty (absolute: the tools' PATH may lack its directory), to size the pty. */
  stty?: string;
  name: string;
  lxcpath: string;
  env: NodeJS.ProcessEnv;
}

const CD_AND_EXEC = 'cd -- "$1" || exit 127; shift; exec "$@"';

/** The request's environment as K=V entries; a name the shell could not hold is refused. */
export function envEntries(req: ExecRequest): string[] {
  return Object.entries(req.env ?? {}).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`exec: "${k}" is not a valid environment variable name`);
    return `${k}=${v}`;
  });
}

/** lxc-attach's argv for a request (without the program itself). */
export function attachArgs(t: Pick<AttachTarget, "name" | "lxcpath">, req: ExecRequest): string[] {
  if (req.command.length === 0) throw new Error("exec: the command is empty");
  const args = ["-n", t.name, "-P", t.lxcpath, "--clear-env"];
  for (const e of envEntries(req)) args.push("-v", e);
  if (req.uid !== undefined) args.push("-u", String(req.uid));
  if (req.gid !== undefined) args.push("-g", String(req.gid));
  const cwd = req.cwd && req.cwd !== "/" ? req.cwd : undefined;
  const command = cwd ? ["/bin/sh", "-c", CD_AND_EXEC, "sh", cwd, ...req.command] : req.command;
  return [...args, "--", ...command];
}

/**
 * What `script` runs on its terminal: the size set first, on that very terminal, so lxc-attach
 * copies it into the container's pty before the command can read it; then lxc-attach.
 */
function ptyCommand(t: AttachTarget, args: string[], size: { cols: number; rows: number }): string {
  const cols = Math.max(1, Math.floor(size.cols));
  const rows = Math.max(1, Math.floor(size.rows));
  const setSize = t.stty ? `${shQuote(t.stty)} cols ${cols} rows ${rows} 2>/dev/null; ` : "";
  return `${setSize}exec ${[t.lxcAttach, ...args].map(shQuote).join(" ")}`;
}

/** Quotes one word for /bin/sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function spawnAttach(t: AttachTarget, req: ExecRequest): ExecProcess {
  const args = attachArgs(t, req);
  if (req.pty && !t.script) throw new Error("exec on a pty needs util-linux's script, which is not installed");
  const child = req.pty
    ? spawn(t.script!, ["--quiet", "--return", "--command", ptyCommand(t, args, req.pty), "/dev/null"], {
        cwd: "/",
        env: { ...t.env, SHELL: "/bin/sh" },
        stdio: ["pipe", "pipe", "ignore"],
      })
    : spawn(t.lxcAttach, args, { cwd: "/", env: t.env, stdio: ["pipe", "pipe", "pipe"] });

  const exited = new Promise<ExecResult>((resolve) => {
    child.on("error", () => resolve({ code: 127 }));
    child.on("close", (code, signal) => {
      const n = signal ? (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 }) as Record<string, number>)[signal] ?? 1 : 0;
      resolve({ code: code ?? 128 + n });
    });
  });
  // A reader that goes away must not crash the daemon with EPIPE.
  child.stdin!.on("error", () => undefined);
  const stdin = req.pty ? heldUntil(attachReady(child.pid ?? -1, t.lxcAttach, exited), child.stdin!) : child.stdin!;

  const ptyDevice = async (): Promise<string | undefined> => {
    // script's child sits on the pty: its stdin is the slave end.
    const kids = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").catch(() => "");
    const kid = kids.trim().split(/\s+/)[0];
    return kid ? readlink(`/proc/${kid}/fd/0`).catch(() => undefined) : undefined;
  };
  return {
    pid: child.pid ?? -1,
    stdin,
    stdout: child.stdout!,
    stderr: req.pty ? null : child.stderr!,
    exited,
    signal(sig) {
      // Without a pty, lxc-attach passes signals on to the command it runs. On a pty the child
      // is script, with lxc-attach under it and the command under that; neither passes a
      // signal on, so it goes to the command itself.
      if (!req.pty) return void child.kill(sig);
      const kids = (pid: number) =>
        readFile(`/proc/${pid}/task/${pid}/children`, "utf8").then((k) => k.trim().split(/\s+/).filter(Boolean).map(Number), () => [] as number[]);
      void (async () => {
        for (const attach of await kids(child.pid!)) for (const cmd of await kids(attach)) process.kill(cmd, sig);
      })().catch(() => undefined);
    },
    async resize(cols, rows) {
      if (!req.pty) return;
      const dev = await ptyDevice();
      if (!dev?.startsWith("/dev/pts/")) return;
      await run(t.stty ?? "stty", ["-F", dev, "cols", String(cols), "rows", String(rows)], { allowFail: true });
    },
  };
}
