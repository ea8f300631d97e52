import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { PassThrough, type Readable } from "node:stream";
import { badRequest } from "../api/errors.js";

/**
 * multipart/form-data, streamed both ways: split image uploads arrive as parts "metadata" then
 * "rootfs" (or "rootfs.img" for a VM), and split exports leave the same way. Parts are read one
 * after the other, each as a stream, so a multi-gigabyte rootfs is never held in memory.
 */

export interface MultipartPart {
  name: string;
  filename: string;
  headers: Record<string, string>;
  /** The part's bytes; must be consumed fully before asking for the next part. */
  data: AsyncIterable<Buffer>;
}

/** The boundary of a multipart/form-data Content-Type, or undefined if it is not one. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\b/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const b = m?.[1] ?? m?.[2];
  if (!b) throw badRequest("Invalid multipart upload: the Content-Type has no boundary");
  return b;
}

export class MultipartReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private finished = false;
  private readonly it: AsyncIterator<Buffer>;
  private readonly delim: Buffer;
  private partOpen = false;

  constructor(body: AsyncIterable<Buffer>, boundary: string) {
    this.it = body[Symbol.asyncIterator]();
    this.delim = Buffer.from(`\r\n--${boundary}`);
    // The first boundary has no CRLF before it; pretend it has so every boundary looks alike.
    this.buf = Buffer.from("\r\n");
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const { value, done } = await this.it.next();
    if (done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, value]) : value;
    return true;
  }

  /** The next part, or undefined after the closing boundary. */
  async next(): Promise<MultipartPart | undefined> {
    if (this.partOpen) throw new Error("MultipartReader: the previous part was not consumed");
    if (this.finished) return undefined;
    // Find the boundary (skipping a preamble before the first one).
    let at: number;
    while ((at = this.buf.indexOf(this.delim)) === -1) {
      if (this.buf.length > this.delim.length) this.buf = this.buf.subarray(this.buf.length - this.delim.length);
      if (!(await this.more())) throw truncated();
    }
    this.buf = this.buf.subarray(at + this.delim.length);
    while (this.buf.length < 2) if (!(await this.more())) throw truncated();
    if (this.buf[0] === 0x2d && this.buf[1] === 0x2d) {
      this.finished = true;
      return undefined;
    }
    let end: number;
    while ((end = this.buf.indexOf("\r\n\r\n")) === -1) {
      if (this.buf.length > 16 * 1024) throw badRequest("Invalid multipart upload: part headers too long");
      if (!(await this.more())) throw truncated();
    }
    const headers: Record<string, string> = {};
    for (const line of this.buf.subarray(0, end).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    this.buf = this.buf.subarray(end + 4);
    const disp = headers["content-disposition"] ?? "";
    const name = dispositionParam(disp, "name");
    if (name === undefined) throw badRequest("Invalid multipart upload: a part has no name");
    this.partOpen = true;
    return { name, filename: dispositionParam(disp, "filename") ?? "", headers, data: this.partData() };
  }

  private async *partData(): AsyncGenerator<Buffer> {
    for (;;) {
      const at = this.buf.indexOf(this.delim);
      if (at !== -1) {
        if (at > 0) yield this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at);
        this.partOpen = false;
        return;
      }
      // Keep a tail that could be the start of a boundary split across chunks.
      const keep = this.delim.length - 1;
      if (this.buf.length > keep) {
        const out = this.buf.subarray(0, this.buf.length - keep);
        this.buf = this.buf.subarray(this.buf.length - keep);
        yield out;
      }
      if (!(await this.more())) throw truncated();
    }
  }
}

const truncated = () => badRequest("Invalid multipart upload: the body ended before the closing boundary (truncated upload?)");

function dispositionParam(disp: string, key: string): string | undefined {
  const m = new RegExp(`(?:^|;)\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(disp) ?? new RegExp(`(?:^|;)\\s*${key}=([^;]*)`, "i").exec(disp);
  return m ? m[1]!.replace(/\\(.)/g, "$1").trim() : undefined;
}

export interface MultipartFile {
  name: string;
  filename: string;
  path: string;
}

/** Streams files as multipart/form-data (LXD's split image export); returns the body and its Content-Type. */
export function multipartBody(files: readonly MultipartFile[]): { body: Readable; contentType: string } {
  const boundary = randomBytes(30).toString("hex");
  const out = new PassThrough();
  void (async () => {
    try {
      for (const f of files) {
        out.write(
          `--${boundary}\r\nContent-Disposition: form-data; name="${quote(f.name)}"; filename="${quote(f.filename)}"\r\n` +
            "Content-Type: application/octet-stream\r\n\r\n",
        );
        for await (const chunk of createReadStream(f.path)) {
          if (!out.write(chunk)) await new Promise((r) => out.once("drain", r));
        }
        out.write("\r\n");
      }
      out.end(`--${boundary}--\r\n`);
    } catch (e) {
      out.destroy(e as Error);
    }
  })();
  return { body: out, contentType: `multipart/form-data; boundary=${boundary}` };
}

const quote = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
