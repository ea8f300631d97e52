/**
 * The GuestAgent over Lodge's own agent (native/vm-agent): one connection to the unix socket
 * QEMU serves for the virtio-serial port org.lodge.agent.0, carrying every exec and file call
 * at once, each on its own channel (agent-protocol.ts).
 *
 * Flow control both ways: the agent sends at most a window of bytes per channel until the host
 * grants more, and the host grants as its readers take the bytes (a Readable that is not read
 * stops its command in the guest, not the connection); stdin and file writes wait for the
 * agent's grants the same way.
 */
import { randomBytes } from "node:crypto";
import { connectUnix } from "../../../sys/unix-socket.js";
import os from "node:os";
import { Readable, type Duplex } from "node:stream";
import { ApiError } from "../../../api/errors.js";
import type { ExecProcess, ExecRequest } from "../../driver.js";
import type { CreateOptions, FileStat, WriteOptions } from "../../files/fileio.js";
import {
  A, DATA_CHUNK, decodeError, encodeExec, encodeFrame, encodeHello, encodeMkdir, encodePath,
  encodeSymlink, encodeWrite, FrameDecoder, H, INITIAL_WINDOW, REPLY_MAGIC, type Frame,
} from "./agent-protocol.js";
import type { GuestAgent, GuestInfo, GuestState } from "./agent-api.js";
import { AgentExec, CreditedReadable } from "./agent-exec.js";

export { LOST_EXIT_CODE } from "./agent-exec.js";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** How often HELLO is repeated while the agent is not answering (it may be starting). */
const HELLO_RETRY_MS = 1000;

/** Connects to the agent's chardev socket; the agent itself answers through ready(). */
export async function connectAgent(socketPath: string): Promise<GuestAgent> {
  return new LodgeAgentClient(await connectUnix(socketPath));
}

/** What a channel does with the frames the agent sends on it. */
type ChannelHandler = (f: Frame) => void;

export class LodgeAgentClient implements GuestAgent {
  private readonly decoder = new FrameDecoder();
  private readonly channels = new Map<number, ChannelHandler>();
  /** Bytes the agent allows us to send on a channel, and who waits for more. */
  private readonly credit = new Map<number, { bytes: number; waiters: (() => void)[] }>();
  private nextChannel = 1;
  private hello?: Promise<GuestInfo>;
  private closed?: Error;

  constructor(private readonly sock: Duplex) {
    sock.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        return this.shutdown(e as Error);
      }
      for (const f of frames) {
        if (f.type === A.WINDOW) {
          const c = this.credit.get(f.channel);
          if (c && f.payload.length >= 4) {
            c.bytes += f.payload.readUInt32LE(0);
            for (const w of c.waiters.splice(0)) w();
          }
          continue;
        }
        this.channels.get(f.channel)?.(f);
      }
    });
    sock.on("error", (e) => this.shutdown(e));
    sock.on("close", () => this.shutdown(new Error("the connection to the guest agent closed")));
  }

  ready(timeoutMs: number): Promise<GuestInfo> {
    this.hello ??= this.handshake(timeoutMs);
    // A failed handshake may be tried again (the guest was still booting).
    this.hello.catch(() => (this.hello = undefined));
    return this.hello;
  }

  private handshake(timeoutMs: number): Promise<GuestInfo> {
    return new Promise<GuestInfo>((resolve, reject) => {
      if (this.closed) return reject(this.closed);
      const ch = this.open();
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: Error, info?: GuestInfo) => {
        clearInterval(retry);
        clearTimeout(timer);
        this.release(ch);
        if (err) reject(err);
        else resolve(info!);
      };
      const send = () => {
        const nonce = randomBytes(8);
        this.decoder.expect(nonce);
        this.send(ch, H.HELLO, encodeHello(nonce));
      };
      this.channels.set(ch, (f) => {
        if (f.type !== A.HELLO) return;
        try {
          const j = JSON.parse(f.payload.subarray(REPLY_MAGIC.length + 8).toString("utf8"));
          done(undefined, { agent: "lodge", version: j.version, os: j.os, osVersion: j.osVersion, kernelVersion: j.kernelVersion, hostname: j.hostname });
        } catch (e) {
          done(new Error(`the guest agent's hello is unreadable: ${(e as Error).message}`));
        }
      });
      this.onClose(ch, (e) => done(e));
      const retry = setInterval(send, HELLO_RETRY_MS);
      timer = setTimeout(() => done(new Error(`the guest agent did not answer within ${timeoutMs} ms`)), timeoutMs);
      send();
    });
  }

  async exec(req: ExecRequest): Promise<ExecProcess> {
    if (req.command.length === 0) throw new Error("exec: the command is empty");
    const env = Object.entries(req.env ?? { PATH: DEFAULT_PATH }).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`exec: "${k}" is not a valid environment variable name`);
      return `${k}=${v}`;
    });
    const payload = encodeExec({ argv: req.command, env, cwd: req.cwd ?? "/", uid: req.uid ?? -1, gid: req.gid ?? -1, pty: req.pty });
    await this.session();
    const ch = this.open();
    const proc = new AgentExec(this, ch, !!req.pty);
    return new Promise<ExecProcess>((resolve, reject) => {
      this.channels.set(ch, (f) => {
        if (f.type === A.STARTED) {
          proc.pid = f.payload.readInt32LE(0);
          resolve(proc);
        } else if (f.type === A.ERROR) {
          this.release(ch);
          reject(new Error(`exec ${JSON.stringify(req.command[0])} in the guest: ${decodeError(f.payload).message}`));
        } else {
          proc.frame(f);
        }
      });
      this.onClose(ch, (e) => {
        reject(e);
        proc.lost();
      });
      this.send(ch, H.EXEC, payload);
    });
  }

  async stat(p: string): Promise<FileStat> {
    const path = normalize(p);
    const body = await this.call(H.STAT, encodePath(path), "stat", path);
    return JSON.parse(body.toString("utf8")) as FileStat;
  }

  async read(p: string): Promise<Readable> {
    const path = normalize(p);
    await this.session();
    const ch = this.open();
    const out = new CreditedReadable(this, ch);
    return new Promise<Readable>((resolve, reject) => {
      let opened = false;
      this.channels.set(ch, (f) => {
        if (f.type === A.OK && !opened) {
          opened = true;
          resolve(out);
        } else if (f.type === A.STDOUT) {
          out.deliver(f.payload);
          if (f.payload.length === 0) this.release(ch);
        } else if (f.type === A.ERROR) {
          this.release(ch);
          const err = fileError(decodeError(f.payload), "read", path);
          if (opened) out.destroy(err);
          else reject(err);
        }
      });
      this.onClose(ch, (e) => (opened ? out.destroy(e) : reject(e)));
      out.on("close", () => {
        if (this.channels.has(ch)) {
          this.send(ch, H.CLOSE);
          this.release(ch);
        }
      });
      this.send(ch, H.READ, encodePath(path));
    });
  }

  async write(p: string, data: Readable | Buffer, opts: WriteOptions = {}): Promise<void> {
    const path = normalize(p);
    const { uid, gid, mode } = createFields(opts);
    await this.session();
    const ch = this.open();
    let answered: (f: Frame) => void = () => {};
    let failed: ((e: Error) => void) | undefined;
    const next = () =>
      new Promise<Frame>((resolve, reject) => {
        answered = resolve;
        failed = reject;
      });
    this.channels.set(ch, (f) => {
      if (f.type === A.OK || f.type === A.ERROR) answered(f);
    });
    this.onClose(ch, (e) => failed?.(e));
    try {
      const opened = next();
      this.send(ch, H.WRITE, encodeWrite(path, !!opts.append, uid, gid, mode));
      let f = await opened;
      if (f.type === A.ERROR) throw fileError(decodeError(f.payload), "write", path);
      const result = next();
      // An early ERROR (disk full) ends the upload; result holds it.
      let early: Frame | undefined;
      void result.then((r) => (early = r), () => undefined);
      const chunks = Buffer.isBuffer(data) ? [data] : data;
      for await (const chunk of chunks as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
        for (let off = 0; off < buf.length && !early; ) {
          const n = await this.takeCredit(ch, Math.min(DATA_CHUNK, buf.length - off));
          this.send(ch, H.DATA, buf.subarray(off, off + n));
          off += n;
        }
        if (early) break;
      }
      if (!early) this.send(ch, H.DATA);
      f = await result;
      if (f.type === A.ERROR) throw fileError(decodeError(f.payload), "write", path);
    } catch (e) {
      if (this.channels.has(ch)) this.send(ch, H.CLOSE);
      throw e;
    } finally {
      this.release(ch);
    }
  }

  async mkdir(p: string, opts: CreateOptions = {}): Promise<void> {
    const path = normalize(p);
    const { uid, gid, mode } = createFields(opts);
    await this.call(H.MKDIR, encodeMkdir(path, uid, gid, mode), "mkdir", path);
  }

  async symlink(target: string, p: string, opts: Omit<CreateOptions, "mode"> = {}): Promise<void> {
    const path = normalize(p);
    if (target === "") throw new ApiError(400, `Empty symlink target for "${path}"`);
    const { uid, gid } = createFields(opts);
    await this.call(H.SYMLINK, encodeSymlink(target, path, uid, gid), "symlink", path);
  }

  async delete(p: string): Promise<void> {
    const path = normalize(p);
    await this.call(H.DELETE, encodePath(path), "delete", path);
  }

  async state(): Promise<GuestState> {
    const j = JSON.parse((await this.call(H.STATE, Buffer.alloc(0), "state", "")).toString("utf8"));
    return { network: j.network, memory: j.memory, processes: j.processes };
  }

  close(): void {
    this.sock.destroy();
    this.shutdown(new Error("the guest agent client was closed"));
  }

  // ---- channel plumbing, also used by AgentExec and CreditedReadable ----

  send(ch: number, type: number, payload?: Buffer): void {
    if (this.closed) return;
    this.sock.write(encodeFrame(ch, type, payload));
  }

  /** Waits until the agent allows up to `want` bytes on ch; returns how many (≥ 1). */
  async takeCredit(ch: number, want: number): Promise<number> {
    const c = this.credit.get(ch);
    if (!c) throw this.closed ?? new Error("the channel to the guest agent is closed");
    while (c.bytes <= 0) {
      await new Promise<void>((r) => c.waiters.push(r));
      if (this.closed) throw this.closed;
      if (!this.credit.has(ch)) throw new Error("the channel to the guest agent is closed");
    }
    const n = Math.min(want, c.bytes);
    c.bytes -= n;
    return n;
  }

  release(ch: number): void {
    this.channels.delete(ch);
    const c = this.credit.get(ch);
    this.credit.delete(ch);
    this.closers.delete(ch);
    for (const w of c?.waiters ?? []) w();
  }

  private readonly closers = new Map<number, (e: Error) => void>();

  private onClose(ch: number, fn: (e: Error) => void): void {
    this.closers.set(ch, fn);
  }

  private open(): number {
    if (this.closed) throw this.closed;
    const ch = this.nextChannel;
    this.nextChannel = this.nextChannel >= 0xfffffff0 ? 1 : this.nextChannel + 1;
    this.credit.set(ch, { bytes: INITIAL_WINDOW, waiters: [] });
    return ch;
  }

  /** The session every call runs in: the hello first (with a default patience). */
  private async session(): Promise<void> {
    if (this.closed) throw this.closed;
    await this.ready(30_000);
  }

  /** A one-shot call: the OK payload, or the agent's error as an ApiError. */
  private async call(type: number, payload: Buffer, op: string, path: string): Promise<Buffer> {
    await this.session();
    const ch = this.open();
    return new Promise<Buffer>((resolve, reject) => {
      this.channels.set(ch, (f) => {
        if (f.type !== A.OK && f.type !== A.ERROR) return;
        this.release(ch);
        if (f.type === A.OK) resolve(f.payload);
        else reject(fileError(decodeError(f.payload), op, path));
      });
      this.onClose(ch, reject);
      this.send(ch, type, payload);
    });
  }

  private shutdown(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    const closers = [...this.closers.values()];
    for (const ch of [...this.credit.keys()]) this.release(ch);
    for (const fn of closers) fn(err);
    this.sock.destroy();
  }
}

/** LXD's rule: the path is always absolute inside the instance ("etc/x" means "/etc/x"). */
function normalize(p: string): string {
  if (p === "") throw new ApiError(400, "Missing path argument");
  if (p.includes("\0")) throw new ApiError(400, `Invalid path ${JSON.stringify(p)}: it contains a NUL byte`);
  return p.startsWith("/") ? p : `/${p}`;
}

function createFields(opts: CreateOptions): { uid: number; gid: number; mode: number } {
  for (const [name, v] of [["uid", opts.uid], ["gid", opts.gid]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0 || v > 0x7fffffff)) throw new ApiError(400, `Invalid ${name} ${v}`);
  }
  if (opts.mode !== undefined && (!Number.isSafeInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o7777)) {
    throw new ApiError(400, `Invalid mode ${opts.mode}`);
  }
  return { uid: opts.uid ?? -1, gid: opts.gid ?? -1, mode: opts.mode ?? -1 };
}

/** The guest's errno as the file API's status, as the container helper maps it. */
export function fileError(e: { errno: number; message: string }, op: string, path: string): ApiError {
  const c = os.constants.errno;
  const where = " in the guest";
  switch (e.errno) {
    case c.ENOENT:
    case c.ENOTDIR:
      return new ApiError(404, `Path "${path}" not found${where} (${e.message})`);
    case c.EACCES:
    case c.EPERM:
    case c.EROFS:
      return new ApiError(403, `Permission denied on "${path}"${where} (${e.message})`);
    case c.EEXIST:
      return new ApiError(409, `Path "${path}" already exists${where} (${e.message})`);
    default:
      return new ApiError(400, `Cannot ${op} "${path}"${where}: ${e.message}`);
  }
}
