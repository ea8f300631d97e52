/**
 * The CLI's warm spare (see native/launcher/lodge.c): a Node process that has loaded the
 * CLI and waits, blocked in accept(), on the user's private socket. The launcher hands it a
 * command: argv, environment, working directory, umask, and its stdin/stdout/stderr, which
 * become the command's process.stdin/stdout/stderr (worker-stdio.ts). The spare runs it as
 * `node lodge.js` would, and sends its exit code back to the launcher.
 *
 * Then, when the command left nothing behind (no handle, timer or signal listener beyond what
 * was there before it), the spare waits for the next command: commands run back to back in a
 * script pay Node's start-up once. Otherwise (and when it was killed) the launcher starts a
 * fresh spare. It leaves after LODGE_CLI_WORKER_IDLE seconds unused (default 600).
 */
import { unlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { LodgeClient } from "../client/client.js";
import { nativeCalls, type NativeCalls } from "../sys/native.js";
import { reportError } from "./exit.js";
import { VERBS, newProgram } from "./program.js";
import { runCli } from "./run.js";
import { useCommandStdio } from "./worker-stdio.js";

const MAGIC = 0x3147444c;
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGWINCH", "SIGUSR1", "SIGUSR2", "SIGPIPE"] as const;

async function main(): Promise<void> {
  const sock = process.argv[2];
  const native = nativeCalls();
  if (!sock || !native) process.exit(1);
  // Everything a command needs is loaded now, not when it is asked for; so are a few of
  // Node's own lazy parts that every command meets (the address checks of a connect).
  await warmUp(sock);
  await settle();

  let listener = listen(native, sock);
  unlinkQuietly(`${sock}.starting`); // (the launcher's mark: a spare is on its way)
  if (listener === undefined) process.exit(0); // another spare is already there
  const idleMs = Math.max(1, Number(process.env.LODGE_CLI_WORKER_IDLE ?? 600)) * 1000;
  const script = new URL("./lodge.js", import.meta.url).pathname;

  // A command that ends the process itself still tells its launcher how.
  let serving = -1;
  process.on("exit", (c) => {
    if (serving >= 0) reply(native, serving, typeof c === "number" ? c : 0);
  });

  for (;;) {
    const conn = acceptCommand(native, listener, sock, idleMs);
    // The path is for another spare while this one is busy (a command run beside this one).
    native.close(listener);
    unlinkQuietly(sock);
    const req = receive(native, conn);
    if (!req) process.exit(1);
    serving = conn;
    const { code, clean, release } = await serve(req, conn, script);
    // Waiting again before the launcher hears the code, so that its next command finds it.
    listener = clean ? listen(native, sock) : undefined;
    serving = -1;
    reply(native, conn, code);
    release();
    if (listener === undefined) process.exit(0);
    await settle();
  }
}

/** The next command's connection from this user; leaves (exit) when none comes in time. */
function acceptCommand(native: NativeCalls, listener: number, sock: string, idleMs: number): number {
  for (;;) {
    let conn = native.acceptTimeout(listener, idleMs);
    if (conn < 0) {
      // Idle: leave, but first take a command that connected just now (after the unlink,
      // launchers run the command themselves).
      unlinkQuietly(sock);
      conn = native.acceptTimeout(listener, 0);
      if (conn < 0) {
        native.close(listener);
        process.exit(0);
      }
    }
    if (native.peerUid(conn) === process.getuid!()) return conn;
    native.close(conn);
  }
}

function reply(native: NativeCalls, conn: number, code: number): void {
  const buf = Buffer.alloc(4);
  buf.writeInt32LE(code);
  try {
    native.sendFds(conn, buf, [], 1000);
  } catch {
    // the launcher is gone
  }
}

/** What is alive in the process: handles, requests, timers, and signal listeners, by kind. */
function liveThings(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  for (const sig of SIGNALS) counts.set(sig, process.listenerCount(sig));
  counts.set("unhandledRejection", process.listenerCount("unhandledRejection"));
  return counts;
}

/** Kinds of which `after` has more than `before`: what a command left running. */
function leftBehind(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...after].filter(([k, n]) => n > (before.get(k) ?? 0)).map(([k, n]) => `${k}×${n - (before.get(k) ?? 0)}`);
}

/**
 * Runs one command as the launcher's process would; `clean` when it left nothing running, so
 * the next command cannot meet any of it.
 */
async function serve(req: Request, conn: number, script: string): Promise<{ code: number; clean: boolean; release: () => void }> {
  try {
    process.chdir(req.cwd);
  } catch {
    // A directory this process may not enter: stay where it is, as a Node started there would.
    process.chdir("/");
  }
  process.umask(req.umask);
  for (const k of Object.keys(process.env)) delete process.env[k];
  for (const e of req.env) {
    const i = e.indexOf("=");
    if (i > 0) process.env[e.slice(0, i)] = e.slice(i + 1);
  }
  process.argv = [process.execPath, script, ...req.args];
  for (const fd of req.fds.slice(3)) closeQuietly(fd);

  // The launcher gone (killed): so is the command.
  const watch = new net.Socket({ fd: conn, readable: true, writable: false });
  const gone = () => process.exit(129);
  watch.on("end", gone);
  watch.on("error", gone);
  const before = liveThings();

  const stdio = useCommandStdio(req.fds.slice(0, 3));
  let code: number;
  try {
    code = await runCli(process.argv);
  } catch (e) {
    code = reportError(e);
  }
  await stdio.finish();
  await settle();
  const left = leftBehind(before, liveThings());
  const clean = left.length === 0 && process.exitCode === undefined;
  watch.off("end", gone);
  watch.off("error", gone);
  process.chdir("/"); // a spare must not keep a directory busy
  // The watch owns conn: it goes (and closes conn) once the launcher has its code.
  return { code, clean, release: () => watch.destroy() };
}

/** A few turns of the loop, so handles being closed are gone (their close phase has run). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

function closeQuietly(fd: number): void {
  try {
    nativeCalls()!.close(fd);
  } catch {
    // not open
  }
}

/**
 * Runs the code every command meets once, so it is compiled before a command waits for it
 * (V8 compiles a function on its first call): every verb's registration and a silent parse,
 * and one client exchange with a throwaway server on a private socket. Nothing touches
 * process.stdout/stderr, which must first become the launcher's.
 */
async function warmUp(sock: string): Promise<void> {
  const verbs = await Promise.all(VERBS.map((v) => v.load()));
  const program = newProgram().configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  for (const v of verbs) v.register(program);
  for (const v of VERBS) {
    try {
      await program.parseAsync(["node", "lodge", v.name, "--help"]);
    } catch {
      // help ends parsing by throwing
    }
  }
  const path = `${sock}.warm-${process.pid}`;
  const server = http.createServer((_req, res) => res.setHeader("content-type", "application/json").end('{"type":"sync","status":"Success","status_code":200,"metadata":[]}'));
  try {
    await new Promise<void>((r, j) => server.once("error", j).listen(path, () => r()));
    const client = new LodgeClient({ socket: path });
    await client.get("/1.0/instances?recursion=2").catch(() => undefined);
    client.close();
  } catch {
    // only a warm-up
  } finally {
    server.close();
    unlinkQuietly(path);
  }
}

/** A listening socket at path, or undefined when a live spare holds it. */
function listen(native: NativeCalls, path: string): number | undefined {
  try {
    return native.listenUnix(path);
  } catch (e) {
    if (!/in use/i.test((e as Error).message)) throw e;
  }
  // In use: by a live spare (connect works) or left by a dead one (refused).
  try {
    const fd = native.connectUnix(path);
    native.close(fd);
    return undefined;
  } catch {
    unlinkQuietly(path);
    return native.listenUnix(path);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

interface Request {
  cwd: string;
  umask: number;
  args: string[];
  env: string[];
  fds: number[];
}

function receive(native: NativeCalls, conn: number): Request | undefined {
  let buf = Buffer.alloc(0);
  const fds: number[] = [];
  while (buf.length < 8 || buf.length < 8 + buf.readUInt32LE(4)) {
    const m = native.recvMsg(conn, 1 << 20);
    fds.push(...m.fds);
    if (m.data.length === 0) return undefined;
    buf = Buffer.concat([buf, m.data]);
    if (buf.length >= 4 && buf.readUInt32LE(0) !== MAGIC) return undefined;
  }
  if (fds.length < 3 || buf.length < 20) return undefined;
  const argc = buf.readUInt32LE(8);
  const envc = buf.readUInt32LE(12);
  const umask = buf.readUInt32LE(16);
  const strings = buf.subarray(20, 8 + buf.readUInt32LE(4)).toString("utf8").split("\0");
  if (strings.length < 1 + argc + envc) return undefined;
  return { cwd: strings[0]!, umask, args: strings.slice(1, 1 + argc), env: strings.slice(1 + argc, 1 + argc + envc), fds };
}

await main();
