/**
 * An exec in the guest on one channel of the agent's connection: its output streams grant the
 * agent more window as their readers take bytes, its stdin waits for the agent's grants, and
 * it ends with the command's exit code (or LOST_EXIT_CODE when the connection goes first).
 */
import os from "node:os";
import { Readable, Writable } from "node:stream";
import type { ExecProcess, ExecResult } from "../../driver.js";
import { A, DATA_CHUNK, encodeI32, encodeResize, encodeWindow, H, type Frame } from "./agent-protocol.js";

/** The exit code an exec reports when the connection to the agent ends before the command. */
export const LOST_EXIT_CODE = 255;

/** What a channel's users need of the connection (agent-client.ts). */
export interface AgentChannels {
  send(ch: number, type: number, payload?: Buffer): void;
  takeCredit(ch: number, want: number): Promise<number>;
  release(ch: number): void;
}

/** A stream the agent fills on a channel; it grants the window back as its reader takes bytes. */
export class CreditedReadable extends Readable {
  private owed = 0;
  private wanting = true;

  constructor(
    private readonly client: AgentChannels,
    private readonly ch: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  /** Data from the agent; an empty buffer is the end. */
  deliver(b: Buffer): void {
    if (b.length === 0) return void this.push(null);
    this.owed += b.length;
    this.wanting = this.push(b);
    if (this.wanting) this.grant();
  }

  override _read(): void {
    this.wanting = true;
    this.grant();
  }

  private grant(): void {
    if (this.owed === 0) return;
    this.client.send(this.ch, H.WINDOW, encodeWindow(this.owed));
    this.owed = 0;
  }
}

export class AgentExec implements ExecProcess {
  pid = 0;
  readonly stdin: Writable;
  readonly stdout: CreditedReadable;
  readonly stderr: CreditedReadable | null;
  readonly exited: Promise<ExecResult>;
  private resolveExit!: (r: ExecResult) => void;
  private done = false;

  constructor(
    private readonly client: AgentChannels,
    private readonly ch: number,
    private readonly pty: boolean,
  ) {
    this.exited = new Promise((r) => (this.resolveExit = r));
    this.stdout = new CreditedReadable(client, ch);
    this.stderr = pty ? null : new CreditedReadable(client, ch);
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.sendInput(chunk).then(() => cb(), () => cb()); // input after the command ended is dropped, as a pipe's would be
      },
      final: (cb) => {
        if (!this.done) client.send(ch, H.DATA);
        cb();
      },
    });
    // A reader that goes away must not crash the daemon.
    this.stdin.on("error", () => undefined);
  }

  private async sendInput(b: Buffer): Promise<void> {
    for (let off = 0; off < b.length && !this.done; ) {
      const n = await this.client.takeCredit(this.ch, Math.min(DATA_CHUNK, b.length - off));
      this.client.send(this.ch, H.DATA, b.subarray(off, off + n));
      off += n;
    }
  }

  frame(f: Frame): void {
    if (f.type === A.STDOUT) this.stdout.deliver(f.payload);
    else if (f.type === A.STDERR) this.stderr?.deliver(f.payload);
    else if (f.type === A.EXIT) this.finish(f.payload.readInt32LE(0));
  }

  /** The connection ended before the command. */
  lost(): void {
    this.finish(LOST_EXIT_CODE);
  }

  private finish(code: number): void {
    if (this.done) return;
    this.done = true;
    this.client.release(this.ch);
    for (const s of [this.stdout, this.stderr]) if (s && !s.readableEnded) s.push(null);
    this.resolveExit({ code });
  }

  signal(sig: NodeJS.Signals): void {
    const n = os.constants.signals[sig];
    if (n === undefined) throw new Error(`unknown signal ${sig}`);
    if (!this.done) this.client.send(this.ch, H.SIGNAL, encodeI32(n));
  }

  async resize(cols: number, rows: number): Promise<void> {
    if (!this.pty || this.done) return;
    this.client.send(this.ch, H.RESIZE, encodeResize(cols, rows));
  }
}
