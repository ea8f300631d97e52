import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import type { WebSocket, RawData } from "ws";
import type { OperationContext, OperationSpec } from "../../core/operations.js";
import { newSecret } from "../../core/operations.js";
import { StreamSockets, toBuffer } from "./sockets.js";
import type { ExecProcess } from "../driver.js";

/** How an exec was asked for (InstanceExecPost, normalised). */
export interface ExecSessionOptions {
  interactive: boolean;
  waitForWebsocket: boolean;
  recordOutput: boolean;
  /** Where recorded output goes (the instance's log directory) and its API path prefix. */
  record?: { dir: string; apiPrefix: string };
  /** How long to wait for the client to connect every websocket. */
  connectTimeoutMs?: number;
}

const SIGNALS: Record<number, NodeJS.Signals> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  9: "SIGKILL",
  10: "SIGUSR1",
  12: "SIGUSR2",
  15: "SIGTERM",
  18: "SIGCONT",
  19: "SIGSTOP",
  20: "SIGTSTP",
  28: "SIGWINCH",
};

/**
 * LXD's exec protocol as an operation. With wait-for-websocket the operation (class
 * "websocket") hands out one secret per stream — "0","1","2" and "control", or "0" and
 * "control" on a terminal — and starts the command once every socket is connected. Data
 * travels as binary messages; an empty text message or a close frame ends a stream; the
 * control socket carries window-resize and signal requests. The exit code ends up in the
 * operation's metadata as "return".
 */
export function execOperation(
  opts: ExecSessionOptions,
  start: () => Promise<ExecProcess>,
): Pick<OperationSpec, "class" | "metadata" | "run" | "connect"> {
  if (!opts.waitForWebsocket) return detached(opts, start);

  const names = opts.interactive ? ["0", "control"] : ["0", "1", "2", "control"];
  const streams = new StreamSockets(names);
  const sockets = streams.sockets;
  let allConnected!: () => void;
  const connected = new Promise<void>((r) => (allConnected = r));
  // Input and control messages can arrive before the command runs (a client with empty stdin
  // sends its end-of-input at once): they are held here from the moment a socket connects.
  const stdin = new PassThrough();
  const control: ControlMessage[] = [];
  let onControl: ((m: ControlMessage) => void) | undefined;

  return {
    class: "websocket",
    metadata: { fds: streams.secrets },
    connect: (secret, ws) => {
      const name = streams.accept(secret, ws);
      if (!name) return false;
      if (name === "0") readInput(ws, stdin);
      if (name === "control")
        ws.on("message", (data: RawData) => {
          const msg = parseControl(data);
          if (!msg) return;
          if (onControl) onControl(msg);
          else control.push(msg);
        });
      // Like LXD, the command starts once its streams are connected; a client may attach the
      // control socket later or not at all (pylxd does not).
      if (names.every((n) => n === "control" || sockets.has(n))) allConnected();
      return true;
    },
    run: async (ctx) => {
      // The command is spawned while the client connects its sockets (its output waits in
      // the pipes), so attaching to the instance and the websocket handshakes overlap.
      // Its output is taken into our own buffers at once: Node discards the unread output of
      // a child that exits, and a short command may finish before the sockets are there.
      const starting = start().then((p) => ({
        proc: p,
        stdout: p.stdout.pipe(new PassThrough()),
        stderr: p.stderr ? p.stderr.pipe(new PassThrough()) : null,
      }));
      try {
        await waitConnected(connected, ctx, opts.connectTimeoutMs ?? 30_000);
      } catch (e) {
        await starting.then((s) => s.proc.signal("SIGKILL")).catch(() => {});
        throw e;
      }
      const { proc, stdout, stderr } = await starting;
      proc.stdin.on("error", () => {}); // the command may exit without reading its input
      stdin.pipe(proc.stdin);
      onControl = (m) => applyControl(proc, m);
      for (const m of control.splice(0)) onControl(m);
      const drained = wire(stdout, stderr, sockets, opts.interactive);
      const { code } = await proc.exited;
      await drained;
      for (const ws of sockets.values()) closeSocket(ws);
      return { return: code };
    },
  };
}

function waitConnected(connected: Promise<void>, ctx: OperationContext, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("Timed out waiting for the exec websockets to connect")), timeoutMs);
    const abort = () => reject(new Error("Exec cancelled before it started"));
    ctx.signal.addEventListener("abort", abort, { once: true });
    connected.then(() => {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", abort);
      resolve();
    });
  });
}

/** Sends the process's output to the websockets; resolves when all of it has been sent. */
function wire(stdout: Readable, stderr: Readable | null, sockets: Map<string, WebSocket>, interactive: boolean): Promise<void> {
  const outputs: Promise<void>[] = [pump(stdout, interactive ? sockets.get("0")! : sockets.get("1")!)];
  if (!interactive) {
    if (stderr) outputs.push(pump(stderr, sockets.get("2")!));
    else barrier(sockets.get("2")!);
  }
  return Promise.all(outputs).then(() => undefined);
}

/** Binary messages are input; an empty text message or the socket closing ends it. */
function readInput(ws: WebSocket, into: PassThrough): void {
  ws.on("message", (data: RawData, isBinary: boolean) => {
    if (into.writableEnded) return;
    if (!isBinary) into.end();
    else into.write(toBuffer(data));
  });
  ws.on("close", () => {
    if (!into.writableEnded) into.end();
  });
}

interface ControlMessage {
  command?: string;
  args?: Record<string, string>;
  signal?: number;
}

function parseControl(data: RawData): ControlMessage | undefined {
  try {
    const msg = JSON.parse(toBuffer(data).toString("utf8")) as unknown;
    return msg && typeof msg === "object" ? (msg as ControlMessage) : undefined;
  } catch {
    return undefined;
  }
}

function applyControl(proc: ExecProcess, msg: ControlMessage): void {
  if (msg.command === "window-resize" && msg.args)
    void proc.resize(Number(msg.args.width), Number(msg.args.height)).catch(() => {});
  else if (msg.command === "signal" && typeof msg.signal === "number" && SIGNALS[msg.signal]) proc.signal(SIGNALS[msg.signal]!);
}

/** Sends a stream as binary messages, then the end-of-stream barrier. */
function pump(stream: Readable, ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    stream.on("data", (chunk: Buffer) => {
      if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
    });
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      barrier(ws);
      resolve();
    };
    // A command that finished before the client connected may have ended its stream already.
    if (stream.readableEnded || stream.destroyed) return done();
    stream.once("end", done);
    stream.once("error", done);
    stream.once("close", done);
  });
}

function barrier(ws: WebSocket): void {
  if (ws.readyState === ws.OPEN) ws.send("", { binary: false });
}

function closeSocket(ws: WebSocket): void {
  if (ws.readyState === ws.OPEN) ws.close(1000);
}


/** Without websockets: the command runs with no input; output is recorded or dropped. */
function detached(
  opts: ExecSessionOptions,
  start: () => Promise<ExecProcess>,
): Pick<OperationSpec, "class" | "metadata" | "run" | "connect"> {
  return {
    class: "task",
    run: async () => {
      const proc = await start();
      proc.stdin.end();
      const output: Record<string, string> = {};
      const sinks: Promise<void>[] = [];
      const streams: [string, Readable | null][] = [
        ["1", proc.stdout],
        ["2", proc.stderr],
      ];
      const id = newSecret().slice(0, 16);
      for (const [fd, stream] of streams) {
        if (!stream) continue;
        if (opts.recordOutput && opts.record) {
          const file = `exec_${id}.${fd === "1" ? "stdout" : "stderr"}`;
          const out = createWriteStream(join(opts.record.dir, file), { mode: 0o600 });
          sinks.push(new Promise((r) => out.once("close", () => r())));
          stream.pipe(out);
          output[fd] = `${opts.record.apiPrefix}/${file}`;
        } else stream.resume();
      }
      const { code } = await proc.exited;
      await Promise.all(sinks);
      return opts.recordOutput ? { return: code, output } : { return: code };
    },
  };
}
