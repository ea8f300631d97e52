/**
 * The CLI's warm spare (see native/launcher/lodge.c): a Node process that has loaded the
 * CLI and waits, blocked in accept(), on the user's private socket. The launcher hands it one
 * command: argv, environment, working directory, umask, and its stdin/stdout/stderr. The
 * spare makes them its own (dup2 onto 0/1/2 before anything has touched process.stdout)
 * and runs the command as `node lodge.js` would; its exit code goes back to the launcher,
 * which then starts the next spare. It leaves after LODGE_CLI_WORKER_IDLE seconds unused (default 600).
 */
import { unlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { LodgeClient } from "../client/client.js";
import { nativeCalls, type NativeCalls } from "../sys/native.js";
import { reportError } from "./exit.js";
import { VERBS, newProgram } from "./program.js";
import { runCli } from "./run.js";

const MAGIC = 0x3147444c;

async function main(): Promise<void> {
  const sock = process.argv[2];
  const native = nativeCalls();
  if (!sock || !native) process.exit(1);
  // Everything a command needs is loaded now, not when it is asked for; so are a few of
  // Node's own lazy parts that every command meets (the address checks of a connect).
  await warmUp(sock);

  const listener = listen(native, sock);
  unlinkQuietly(`${sock}.starting`); // (the launcher's mark: a spare is on its way)
  if (listener === undefined) process.exit(0); // another spare is already there
  const idleMs = Math.max(1, Number(process.env.LODGE_CLI_WORKER_IDLE ?? 600)) * 1000;
  let conn = -1;
  for (;;) {
    conn = native.acceptTimeout(listener, idleMs);
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
    if (native.peerUid(conn) === process.getuid!()) break;
    native.close(conn);
  }
  // The path is the next spare's (the launcher starts it once this command is done, so the
  // two do not compete for the CPU); this one is taken.
  native.close(listener);
  unlinkQuietly(sock);

  const req = receive(native, conn);
  if (!req) process.exit(1);
  for (let i = 0; i < 3; i++) {
    native.dup2(req.fds[i]!, i);
    native.close(req.fds[i]!);
  }
  for (const fd of req.fds.slice(3)) native.close(fd);
  try {
    process.chdir(req.cwd);
  } catch {
    // A directory this process may not enter: stay in "/", as a Node started there would work on.
  }
  process.umask(req.umask);
  for (const k of Object.keys(process.env)) delete process.env[k];
  for (const e of req.env) {
    const i = e.indexOf("=");
    if (i > 0) process.env[e.slice(0, i)] = e.slice(i + 1);
  }
  process.argv = [process.execPath, new URL("./lodge.js", import.meta.url).pathname, ...req.args];

  const code = Buffer.alloc(4);
  process.on("exit", (c) => {
    code.writeInt32LE(typeof c === "number" ? c : 0);
    try {
      native.sendFds(conn, code, []);
    } catch {
      // the launcher is gone
    }
  });
  // The launcher gone (killed): so is the command.
  const watch = new net.Socket({ fd: conn, readable: true, writable: false });
  watch.on("end", () => process.exit(129));
  watch.on("error", () => process.exit(129));
  watch.unref();
  // As main.ts: exit straight away, keep-alive sockets must not hold the process open.
  runCli(process.argv).then(
    (c) => process.exit(c),
    (e) => process.exit(reportError(e)),
  );
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
