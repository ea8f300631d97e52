/**
 * LXD's console protocol as an operation (class "websocket"): secrets for fd "0" (the
 * terminal, both ways, binary messages) and "control" (window-resize requests). The console
 * is attached once both sockets are connected; the session ends when the client closes
 * either socket (`lxc console` detaches by closing control) or when the relay ends (the
 * container stopped). Ending a session detaches only: whatever runs on the console stays.
 */
import type { RawData } from "ws";
import type { OperationContext, OperationSpec } from "../core/operations.js";
import { StreamSockets, toBuffer } from "./exec/sockets.js";
import type { ConsoleProcess } from "./console.js";

export interface ConsoleSessionOptions {
  /** How long to wait for the client to connect both websockets. */
  connectTimeoutMs?: number;
}

export function consoleOperation(
  attach: () => Promise<ConsoleProcess>,
  opts: ConsoleSessionOptions = {},
): Pick<OperationSpec, "class" | "metadata" | "run" | "connect"> {
  const names = ["0", "control"] as const;
  const streams = new StreamSockets(names);
  const sockets = streams.sockets;
  let allConnected!: () => void;
  const connected = new Promise<void>((r) => (allConnected = r));
  // Set when a socket closes: before the console is attached it cancels the attach.
  let detach!: () => void;
  const detached = new Promise<void>((r) => (detach = r));
  // Input and resizes that arrive before the console is attached wait here.
  const pendingInput: Buffer[] = [];
  let resize: { cols: number; rows: number } | undefined;
  let proc: ConsoleProcess | undefined;

  return {
    class: "websocket",
    metadata: { fds: streams.secrets },
    connect: (secret, ws) => {
      const name = streams.accept(secret, ws);
      if (!name) return false;
      ws.on("close", () => detach());
      ws.on("error", () => detach());
      if (name === "0")
        ws.on("message", (data: RawData, isBinary: boolean) => {
          if (!isBinary) return; // an empty text message is a stream barrier, not input
          const buf = toBuffer(data);
          if (proc) proc.stdin.write(buf);
          else pendingInput.push(buf);
        });
      else
        ws.on("message", (data: RawData) => {
          const size = parseResize(data);
          if (!size) return;
          if (proc) void proc.resize(size.cols, size.rows).catch(() => undefined);
          else resize = size;
        });
      if (sockets.size === names.length) allConnected();
      return true;
    },
    run: async (ctx) => {
      try {
        await session(ctx);
      } finally {
        for (const ws of sockets.values()) if (ws.readyState === ws.OPEN) ws.close(1000);
      }
    },
  };

  async function session(ctx: OperationContext): Promise<void> {
    await waitConnected(connected, detached, ctx, opts.connectTimeoutMs ?? 30_000);
    if (sockets.size < names.length || [...sockets.values()].some((ws) => ws.readyState !== ws.OPEN)) return;
    proc = await attach();
    for (const b of pendingInput.splice(0)) proc.stdin.write(b);
    if (resize) void proc.resize(resize.cols, resize.rows).catch(() => undefined);
    const terminal = sockets.get("0")!;
    proc.stdout.on("data", (chunk: Buffer) => {
      if (terminal.readyState === terminal.OPEN) terminal.send(chunk, { binary: true });
    });
    const abort = () => detach();
    ctx.signal.addEventListener("abort", abort, { once: true });
    await Promise.race([proc.exited, detached]);
    ctx.signal.removeEventListener("abort", abort);
    proc.close();
    await proc.exited;
  }
}

function waitConnected(connected: Promise<void>, detached: Promise<void>, ctx: OperationContext, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("Timed out waiting for the console websockets to connect")), timeoutMs);
    const abort = () => reject(new Error("Console cancelled before it was attached"));
    ctx.signal.addEventListener("abort", abort, { once: true });
    void Promise.race([connected, detached]).then(() => {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", abort);
      resolve();
    });
  });
}

/** `{"command": "window-resize", "args": {"width": "80", "height": "24"}}` */
function parseResize(data: RawData): { cols: number; rows: number } | undefined {
  try {
    const msg = JSON.parse(toBuffer(data).toString("utf8")) as { command?: string; args?: Record<string, string> };
    if (msg?.command !== "window-resize" || !msg.args) return undefined;
    const cols = Number(msg.args.width);
    const rows = Number(msg.args.height);
    return cols > 0 && rows > 0 ? { cols, rows } : undefined;
  } catch {
    return undefined;
  }
}

