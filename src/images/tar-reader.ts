import { badRequest } from "../api/errors.js";

/** One entry of a tarball as the archive states it (before any extraction). */
export interface TarMember {
  /** The path as stored (pax/GNU long names applied), not normalised. */
  name: string;
  type: MemberType;
  /** Target of a symlink or hard link. */
  linkname: string;
  size: number;
}

export type MemberType = "file" | "hardlink" | "symlink" | "char" | "block" | "dir" | "fifo";

const TYPES: Record<string, MemberType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  S: "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

const BLOCK = 512;

export interface ReadTarOptions {
  /** Member names (after stripping "./") whose content should be returned, up to `captureLimit` bytes. */
  capture?: readonly string[];
  captureLimit?: number;
  /** Called for each member; may throw to stop reading. */
  onMember?: (m: TarMember) => void;
}

export interface TarListing {
  members: TarMember[];
  captured: Map<string, Buffer>;
}

/**
 * Reads a plain (decompressed) tar stream and lists its members, checking each header's
 * checksum and that the archive ends with its end-of-archive block, so corrupt and truncated
 * archives are refused. Understands ustar, GNU (long names, sparse) and pax headers.
 */
export async function readTar(source: AsyncIterable<Buffer>, opts: ReadTarOptions = {}): Promise<TarListing> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  const members: TarMember[] = [];
  const captured = new Map<string, Buffer>();
  const captureLimit = opts.captureLimit ?? 1024 * 1024;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  let globalPax: Record<string, string> = {};

  for (;;) {
    const header = await r.read(BLOCK);
    if (header.length < BLOCK) throw truncated();
    if (isZero(header)) {
      // End of archive; whatever follows (a second zero block, record padding) is drained.
      await r.drain();
      return { members, captured };
    }
    verifyChecksum(header, members.length);
    const flag = String.fromCharCode(header[156]!);
    let size = parseNumber(header.subarray(124, 136), "size");

    if (flag === "L" || flag === "K" || flag === "x" || flag === "g") {
      const data = await r.read(size);
      if (data.length < size) throw truncated();
      await r.skip(pad(size));
      if (flag === "L") longName = cString(data);
      else if (flag === "K") longLink = cString(data);
      else if (flag === "x") pax = { ...pax, ...parsePax(data) };
      else globalPax = { ...globalPax, ...parsePax(data) };
      continue;
    }

    const type = TYPES[flag];
    if (!type) throw badRequest(`Invalid image: unsupported tar entry type "${flag}" (entry ${members.length + 1})`);

    const ustar = header.subarray(257, 263).toString("latin1") === "ustar\0";
    let name = cString(header.subarray(0, 100));
    if (ustar) {
      const prefix = cString(header.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    const meta = { ...globalPax, ...pax };
    // A PAX sparse file (GNU tar's --sparse in posix format) is stored under a made-up name
    // ("GNUSparseFile.N/x"), its own name and size in GNU.sparse.* records.
    name = meta["GNU.sparse.name"] ?? meta.path ?? longName ?? name;
    const linkname = meta.linkpath ?? longLink ?? cString(header.subarray(157, 257));
    if (meta.size !== undefined) size = Number(meta.size);
    if (flag === "S" && header[482] !== 0) await skipSparseExtensions(r);
    longName = longLink = undefined;
    pax = {};

    const realSize = meta["GNU.sparse.realsize"] ?? meta["GNU.sparse.size"];
    const m: TarMember = { name, type, linkname, size: type === "file" ? (realSize !== undefined ? Number(realSize) : size) : 0 };
    opts.onMember?.(m);
    members.push(m);

    const dataSize = type === "file" ? size : flag === "1" || flag === "2" || flag === "5" ? 0 : size;
    const key = name.replace(/^(\.\/)+/, "");
    if (type === "file" && opts.capture?.includes(key) && size <= captureLimit) {
      const data = await r.read(size);
      if (data.length < size) throw truncated();
      captured.set(key, data);
    } else if (!(await r.skip(dataSize))) throw truncated();
    if (!(await r.skip(pad(dataSize)))) throw truncated();
  }
}

async function skipSparseExtensions(r: ByteReader): Promise<void> {
  for (;;) {
    const ext = await r.read(BLOCK);
    if (ext.length < BLOCK) throw truncated();
    if (ext[504] === 0) return;
  }
}

const truncated = () => badRequest("Invalid image: the tarball is truncated or corrupt (unexpected end of archive)");

const pad = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function verifyChecksum(h: Buffer, index: number): void {
  const stored = parseNumber(h.subarray(148, 156), "checksum");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  if (sum !== stored)
    throw badRequest(`Invalid image: the tarball is corrupt (bad header checksum at entry ${index + 1})`);
}

/** Octal (NUL/space terminated) or GNU base-256 numeric field. */
function parseNumber(field: Buffer, what: string): number {
  if (field[0]! & 0x80) {
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const s = field.toString("latin1").replace(/[\0 ]+$/, "").replace(/^[ ]+/, "").replace(/\0.*$/, "");
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw badRequest(`Invalid image: the tarball is corrupt (bad ${what} field)`);
  return parseInt(s, 8);
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end === -1 ? b.length : end).toString("utf8");
}

/** pax records: "<len> <key>=<value>\n". */
function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp === -1) break;
    const len = Number(data.subarray(off, sp).toString("latin1"));
    if (!Number.isInteger(len) || len <= 0 || off + len > data.length)
      throw badRequest("Invalid image: the tarball is corrupt (bad pax header)");
    const rec = data.subarray(sp + 1, off + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

/** Pulls exact byte counts out of a chunk stream without re-copying what it skips. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const { value, done } = await this.it.next();
      if (done) this.done = true;
      else if (value.length > 0) {
        this.chunks.push(value);
        this.buffered += value.length;
      }
    }
  }

  /** Up to n bytes (fewer only at end of stream). */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, take);
    const rest = all.subarray(take);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  /** Skips n bytes; false if the stream ended first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0) {
        await this.fill(1);
        if (this.buffered === 0) return false;
      }
      const head = this.chunks[0]!;
      if (head.length <= left) {
        left -= head.length;
        this.buffered -= head.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = head.subarray(left);
        this.buffered -= left;
        left = 0;
      }
    }
    return true;
  }

  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (!this.done) {
      const { done } = await this.it.next();
      if (done) this.done = true;
    }
  }
}
