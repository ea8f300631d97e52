/**
 * The client side of LXD's exec websocket protocol. The exec operation hands out one secret
 * per stream: "0", "1", "2" and "control" (or "0" and "control" on a terminal). Data travels as
 * binary messages; an empty text message (or the socket closing) ends a stream; the control
 * socket carries window-resize and signal requests. The command's exit code is the
 * operation's metadata "return". The console uses the same terminal half (`attachTerminal`).
 */
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type WebSocket from "ws";
import type { InstanceExecPost } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { instanceUrl } from "./instance-ref.js";

type TtyIn = Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
type TtyOut = Writable & { isTTY?: boolean; columns?: number; rows?: number };

export interface ExecIO {
  stdin: TtyIn;
  stdout: TtyOut;
  stderr: Writable;
}

const processIO = (): ExecIO => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });

/** Signals lxc forwards to the remote command (SIGWINCH becomes a window-resize instead). */
export const FORWARDED_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT"];

export interface ExecMode {
  interactive: boolean;
  /** -n: the command's stdin is empty, the local stdin is never read. */
  noStdin: boolean;
}

/**
 * lxc's rule: interactive when stdin and stdout are both terminals, unless -T; -t forces it.
 */
export function execMode(flags: { forceInteractive?: boolean; forceNonInteractive?: boolean; noStdin?: boolean }, io: Pick<ExecIO, "stdin" | "stdout"> = processIO()): ExecMode {
  const tty = !!io.stdin.isTTY && !!io.stdout.isTTY;
  const interactive = flags.forceInteractive ? true : flags.forceNonInteractive ? false : tty && !flags.noStdin;
  return { interactive, noStdin: !!flags.noStdin };
}

/** Terminal size for the pty; a terminal reporting 0 columns (some ptys do) counts as 80x24. */
export function terminalSize(out: TtyOut): { width: number; height: number } {
  return { width: out.columns || 80, height: out.rows || 24 };
}

/**
 * The operation's websockets, by fd name. They come back paused (see LodgeClient.websocket):
 * the caller attaches its handlers, then calls `resumeAll`.
 */
export async function connectFds(c: LodgeClient, op: Operation, names: string[]): Promise<Record<string, WebSocket>> {
  const fds = (op.metadata as { fds?: Record<string, string> } | null)?.fds ?? {};
  const out: Record<string, WebSocket> = {};
  await Promise.all(
    names.map(async (n) => {
      const secret = fds[n];
      if (!secret) throw new Error(`The server offered no "${n}" stream for this operation`);
      out[n] = await c.websocket(`/1.0/operations/${op.id}/websocket?secret=${encodeURIComponent(secret)}`, { paused: true });
    }),
  );
  return out;
}

export function resumeAll(ws: Record<string, WebSocket>): void {
  for (const s of Object.values(ws)) s.resume();
}

/** Runs a command in an instance over websockets; resolves with its exit code. */
export async function runExec(c: LodgeClient, name: string, req: InstanceExecPost, mode: ExecMode, io: ExecIO = processIO()): Promise<number> {
  const body: InstanceExecPost = { ...req, interactive: mode.interactive, "wait-for-websocket": true, "record-output": false };
  if (mode.interactive) Object.assign(body, terminalSize(io.stdout));
  const op = await c.post<Operation>(instanceUrl(name, "/exec"), body);
  const names = mode.interactive ? ["control", "0"] : ["control", "0", "1", "2"];
  const ws = await connectFds(c, op, names);
  const done = c.wait(op);
  const control = ws.control!;
  const detachSignals = forwardSignals(control, io, mode.interactive);
  let outputs: Promise<unknown>;
  let restore = () => {};
  if (mode.interactive) {
    restore = attachTerminal(ws["0"]!, io, mode.noStdin);
    outputs = receive(ws["0"]!, io.stdout);
  } else {
    sendInput(ws["0"]!, io.stdin, mode.noStdin);
    outputs = Promise.all([receive(ws["1"]!, io.stdout), receive(ws["2"]!, io.stderr)]);
  }
  resumeAll(ws);
  try {
    const finished = await done;
    // The output may trail the operation's end by a message or two: take it all.
    await Promise.race([outputs, new Promise((r) => setTimeout(r, 2000).unref())]);
    await flush(io.stdout);
    await flush(io.stderr);
    const code = (finished.metadata as { return?: number } | null)?.return;
    return typeof code === "number" ? code : 0;
  } finally {
    restore();
    detachSignals();
    io.stdin.pause();
    for (const s of Object.values(ws)) s.terminate();
  }
}

/** Forwards local signals as control messages; on a terminal, window size changes too. */
function forwardSignals(control: WebSocket, io: ExecIO, interactive: boolean): () => void {
  const handlers: [NodeJS.Signals, () => void][] = FORWARDED_SIGNALS.map((sig) => [
    sig,
    () => sendControl(control, { command: "signal", signal: constants.signals[sig] }),
  ]);
  if (interactive)
    handlers.push([
      "SIGWINCH",
      () => {
        const { width, height } = terminalSize(io.stdout);
        sendControl(control, { command: "window-resize", args: { width: String(width), height: String(height) } });
      },
    ]);
  for (const [sig, h] of handlers) process.on(sig, h);
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

export function sendControl(control: WebSocket, msg: unknown): void {
  if (control.readyState === control.OPEN) control.send(JSON.stringify(msg));
}

/**
 * A local terminal joined to a remote pty through one socket: raw mode (so keys such as ^C
 * go to the remote side), input forwarded. Returns the function that puts the terminal back.
 */
export function attachTerminal(ws: WebSocket, io: ExecIO, noStdin: boolean, onInput?: (chunk: Buffer) => Buffer | null): () => void {
  const raw = !!io.stdin.isTTY && typeof io.stdin.setRawMode === "function";
  if (raw) io.stdin.setRawMode!(true);
  if (noStdin) {
    ws.send("", { binary: false });
  } else {
    io.stdin.on("data", (chunk: Buffer) => {
      const data = onInput ? onInput(chunk) : chunk;
      if (data && data.length && ws.readyState === ws.OPEN) ws.send(data, { binary: true });
    });
    io.stdin.resume();
  }
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    if (raw) io.stdin.setRawMode!(false);
  };
}

/** Local stdin to the command's stdin; its end (or -n) is sent as the empty text message. */
function sendInput(ws: WebSocket, stdin: Readable, noStdin: boolean): void {
  const end = () => {
    if (ws.readyState === ws.OPEN) ws.send("", { binary: false });
  };
  if (noStdin) return end();
  stdin.on("data", (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true });
    // Backpressure: a fast local producer must not fill memory faster than the socket drains.
    if (ws.bufferedAmount > 4 << 20) {
      stdin.pause();
      const wait = () => (ws.bufferedAmount > 1 << 20 && ws.readyState === ws.OPEN ? setTimeout(wait, 5) : stdin.resume());
      setTimeout(wait, 5);
    }
  });
  stdin.once("end", end);
  stdin.once("error", end);
  stdin.resume();
}

/** Writes a stream's binary messages out; resolves at its end (empty text message or close). */
export function receive(ws: WebSocket, out: Writable): Promise<void> {
  return new Promise((resolve) => {
    ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      if (!isBinary) return resolve();
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (buf.length) out.write(buf);
    });
    ws.once("close", () => resolve());
    ws.once("error", () => resolve());
  });
}

/** Resolves once what was written to `out` has been handed to the OS. */
function flush(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (out.writableEnded || out.destroyed) return resolve();
    out.write("", () => resolve());
  });
}
