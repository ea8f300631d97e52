/**
 * A QMP client: QEMU's JSON machine protocol over a unix socket. One JSON object per line;
 * QEMU greets first, the client negotiates capabilities, then commands carry an id that their
 * reply echoes, and events arrive between replies at any time.
 *
 * QEMU's monitor socket serves one client at a time (a second one waits unanswered in the
 * backlog), so the driver keeps one connection per running VM and shares it. The socket closing
 * is the most direct sign that QEMU is gone, which is what `closed` and the "close" event give;
 * after a lodged restart a new client simply connects again (the old one died with its process).
 */
import { EventEmitter } from "node:events";
import net from "node:net";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  override name = "QmpError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`QMP ${command}: ${desc}`);
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Events: "event" (QmpEvent), and "close" once, when the connection is gone. */
export class QmpClient extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private buf = "";
  private closedFlag = false;
  /** QEMU's version from the greeting ("7.2.0"). */
  version = "";

  private constructor(private readonly sock: net.Socket) {
    super();
  }

  /**
   * Connects, reads the greeting and negotiates capabilities; rejects after timeoutMs (a
   * monitor busy with another client never greets).
   */
  static async connect(path: string, timeoutMs = 5_000): Promise<QmpClient> {
    const sock = net.createConnection({ path });
    const client = new QmpClient(sock);
    const greeting = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`QMP socket ${path} gave no greeting within ${timeoutMs} ms`)), timeoutMs);
      client.greeted = (g) => {
        clearTimeout(timer);
        resolve(g);
      };
      sock.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      sock.once("close", () => {
        clearTimeout(timer);
        reject(new Error(`QMP socket ${path} closed before its greeting`));
      });
    });
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => client.onData(chunk));
    sock.on("error", () => undefined); // "close" follows and says it all
    sock.on("close", () => client.onClose());
    try {
      const g = await greeting;
      const v = (g.QMP as { version?: { qemu?: { major: number; minor: number; micro: number } } } | undefined)?.version?.qemu;
      if (v) client.version = `${v.major}.${v.minor}.${v.micro}`;
      await client.execute("qmp_capabilities");
    } catch (e) {
      sock.destroy();
      throw e;
    }
    return client;
  }

  private greeted?: (g: Record<string, unknown>) => void;

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Runs a command; resolves with its `return`, rejects with its `error` or when the connection ends. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedFlag) return Promise.reject(new Error(`QMP ${command}: the monitor connection is closed`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + "\n");
    });
  }

  /** Resolves with the next event named `name` (or null when the connection ends first). */
  nextEvent(name: string): Promise<QmpEvent | null> {
    if (this.closedFlag) return Promise.resolve(null);
    return new Promise((resolve) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name) return;
        done();
        resolve(e);
      };
      const onClose = () => {
        done();
        resolve(null);
      };
      const done = () => {
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  /** Resolves when the connection has ended (QEMU exited, or close() was called). */
  whenClosed(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => this.once("close", () => resolve()));
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not QMP: ignored rather than fatal
    }
    if ("QMP" in msg) return this.greeted?.(msg);
    if (typeof msg.event === "string") {
      this.emit("event", msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === "string" ? msg.id : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p) return;
    this.pending.delete(id!);
    if ("error" in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, err.class ?? "GenericError", err.desc ?? "failed"));
    } else p.resolve(msg.return);
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const p of this.pending.values()) p.reject(new Error(`QMP ${p.command}: the monitor connection closed (QEMU exited?)`));
    this.pending.clear();
    this.emit("close");
  }
}
