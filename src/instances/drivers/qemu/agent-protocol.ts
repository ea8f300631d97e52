/**
 * Lodge's guest agent protocol (native/vm-agent, docs/vm-agent.md), host side: frame codec and
 * request encoders. Every frame is `u32 length, u32 channel, u8 type, payload` (little-endian,
 * length counts the payload only). The host opens a channel per request (exec, file call,
 * state) with a number of its own; the agent answers on it. Requests are binary (fixed fields,
 * then NUL-terminated strings); answers with structure are JSON.
 *
 * A session begins with HELLO: the host sends a magic and a random nonce, the agent drops
 * whatever an earlier session left (its commands are killed) and answers with its own magic
 * and the nonce. Until that answer the host skips every byte, so a stream left mid-frame by an
 * earlier connection cannot confuse it.
 */
export const HDR = 9;
export const MAX_PAYLOAD = 1 << 20;
/** Bytes either side may send on a channel before the other grants more (WINDOW). */
export const INITIAL_WINDOW = 256 * 1024;
/** Largest data frame the host sends. */
export const DATA_CHUNK = 64 * 1024;

/** Host → agent. */
export const H = {
  HELLO: 1, EXEC: 2, DATA: 3, SIGNAL: 4, RESIZE: 5, WINDOW: 6, CLOSE: 7,
  STAT: 16, READ: 17, WRITE: 18, MKDIR: 19, SYMLINK: 20, DELETE: 21, STATE: 22,
} as const;

/** Agent → host. */
export const A = {
  HELLO: 0x81, STARTED: 0x82, STDOUT: 0x83, STDERR: 0x84, EXIT: 0x85, OK: 0x86, WINDOW: 0x87, ERROR: 0x8f,
} as const;

export const HELLO_MAGIC = Buffer.from("LODGEHI1", "latin1");
export const REPLY_MAGIC = Buffer.from("LODGEAG1", "latin1");

export interface Frame {
  channel: number;
  type: number;
  payload: Buffer;
}

export function encodeFrame(channel: number, type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(HDR);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt32LE(channel, 4);
  h.writeUInt8(type, 8);
  return Buffer.concat([h, payload]);
}

function i32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}

function strings(list: readonly string[]): Buffer {
  for (const s of list) if (s.includes("\0")) throw new Error(`a string sent to the guest agent contains a NUL byte: ${JSON.stringify(s)}`);
  return Buffer.from(list.map((s) => s + "\0").join(""), "utf8");
}

export function encodeHello(nonce: Buffer): Buffer {
  return Buffer.concat([HELLO_MAGIC, nonce]);
}

export interface ExecFields {
  argv: readonly string[];
  env: readonly string[];
  cwd: string;
  uid: number;
  gid: number;
  pty?: { cols: number; rows: number };
}

/** u32 flags (1: pty), i32 uid, i32 gid, u16 cols, u16 rows, u32 argc, u32 envc, cwd\0 argv\0… env\0… */
export function encodeExec(e: ExecFields): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(e.pty ? 1 : 0, 0);
  h.writeInt32LE(e.uid, 4);
  h.writeInt32LE(e.gid, 8);
  h.writeUInt16LE(clampU16(e.pty?.cols ?? 0), 12);
  h.writeUInt16LE(clampU16(e.pty?.rows ?? 0), 14);
  h.writeUInt32LE(e.argv.length, 16);
  h.writeUInt32LE(e.env.length, 20);
  return Buffer.concat([h, strings([e.cwd, ...e.argv, ...e.env])]);
}

export function encodeResize(cols: number, rows: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(clampU16(cols), 0);
  b.writeUInt16LE(clampU16(rows), 2);
  return b;
}

export const encodeI32 = i32;

export function encodeWindow(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export const encodePath = (path: string): Buffer => strings([path]);

/** -1 for "not given" (the agent's default). */
export function encodeMkdir(path: string, uid = -1, gid = -1, mode = -1): Buffer {
  return Buffer.concat([i32(uid), i32(gid), i32(mode), strings([path])]);
}

export function encodeSymlink(target: string, path: string, uid = -1, gid = -1): Buffer {
  return Buffer.concat([i32(uid), i32(gid), strings([target, path])]);
}

export function encodeWrite(path: string, append: boolean, uid = -1, gid = -1, mode = -1): Buffer {
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(append ? 1 : 0, 0);
  return Buffer.concat([flags, i32(uid), i32(gid), i32(mode), strings([path])]);
}

/** An ERROR payload: the guest's errno and a message. */
export function decodeError(p: Buffer): { errno: number; message: string } {
  if (p.length < 4) return { errno: 0, message: "unknown error" };
  return { errno: p.readInt32LE(0), message: p.subarray(4).toString("utf8") };
}

function clampU16(v: number): number {
  return Math.max(0, Math.min(0xffff, Math.floor(v)));
}

/**
 * Splits the agent's byte stream into frames. Until `expect` finds the HELLO answer carrying
 * one of the nonces this connection sent, bytes are skipped (see the module comment).
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private synced = false;
  private readonly nonces: Buffer[] = [];

  /** A nonce sent in a HELLO: its answer starts the session. */
  expect(nonce: Buffer): void {
    this.nonces.push(nonce);
  }

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    if (!this.synced && !this.sync()) return out;
    let off = 0;
    while (this.buf.length - off >= HDR) {
      const len = this.buf.readUInt32LE(off);
      if (len > MAX_PAYLOAD + 64) throw new Error(`the guest agent sent a frame of ${len} bytes: the stream is corrupt`);
      if (this.buf.length - off < HDR + len) break;
      out.push({
        channel: this.buf.readUInt32LE(off + 4),
        type: this.buf.readUInt8(off + 8),
        payload: this.buf.subarray(off + HDR, off + HDR + len),
      });
      off += HDR + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return out;
  }

  private sync(): boolean {
    for (let from = 0; ; ) {
      const at = this.buf.indexOf(REPLY_MAGIC, from);
      if (at < 0) {
        // Keep a tail long enough to hold a header and a magic cut by the chunk's end.
        const keep = HDR + REPLY_MAGIC.length + 8;
        if (this.buf.length > keep) this.buf = this.buf.subarray(this.buf.length - keep);
        return false;
      }
      const nonce = this.buf.subarray(at + REPLY_MAGIC.length, at + REPLY_MAGIC.length + 8);
      if (nonce.length < 8) {
        this.buf = this.buf.subarray(Math.max(0, at - HDR));
        return false;
      }
      if (at >= HDR && this.buf.readUInt8(at - 1) === A.HELLO && this.nonces.some((n) => n.equals(nonce))) {
        this.buf = this.buf.subarray(at - HDR);
        this.synced = true;
        return true;
      }
      from = at + 1;
    }
  }
}
