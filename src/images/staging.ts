import type { Hash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";
import { badRequest } from "../api/errors.js";
import { newFingerprintHash } from "./fingerprint.js";
import { ProgressTracker, type ProgressCallback } from "./progress.js";

export type StagedPart = "metadata" | "rootfs";

export interface ReceiveOptions {
  onProgress?: ProgressCallback;
  /** Expected byte count (Content-Length), for percentages. */
  total?: number;
  signal?: AbortSignal;
  /** Name of the part in progress reports (default: the part). */
  label?: string;
  /** Refuse more than this many bytes (a project's image budget). */
  maxBytes?: number;
}

/** Staging directories live in the images directory (same filesystem, so commit is a rename). */
export const STAGING_PREFIX = ".staging-";

/**
 * Where an import's bytes land before they are validated: a private directory under
 * $LODGE_DIR/images, written part by part ("metadata" first, then "rootfs" for a split image)
 * while one SHA-256 runs over all of them in that order, which is the image's fingerprint.
 * Nothing here is visible to the API; discard() removes every trace.
 */
export class ImageStaging {
  private readonly hash: Hash = newFingerprintHash();
  private readonly parts = new Map<StagedPart, { path: string; bytes: number }>();
  private digest?: string;

  private constructor(readonly dir: string) {}

  static async create(imagesDir: string): Promise<ImageStaging> {
    return new ImageStaging(await mkdtemp(join(imagesDir, STAGING_PREFIX)));
  }

  /** Streams one part to disk, hashing and counting it; returns its size. */
  async receive(part: StagedPart, data: AsyncIterable<Buffer | Uint8Array>, opts: ReceiveOptions = {}): Promise<number> {
    if (this.digest) throw new Error("ImageStaging: the fingerprint was already taken");
    if (this.parts.has(part)) throw badRequest(`Invalid upload: the ${part} part was sent twice`);
    if (part === "rootfs" && !this.parts.has("metadata"))
      throw badRequest("Invalid upload: the rootfs part came before the metadata part");
    const path = join(this.dir, part);
    const out = createWriteStream(path, { mode: 0o600 });
    const failed = once(out, "error").then(([e]) => Promise.reject(e as Error));
    failed.catch(() => {});
    const progress = new ProgressTracker(opts.label ?? part, opts.onProgress, opts.total);
    try {
      for await (const chunk of data) {
        opts.signal?.throwIfAborted();
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        if (opts.maxBytes !== undefined && progress.count + buf.length > opts.maxBytes)
          throw badRequest(`Image too large: it exceeds the ${opts.maxBytes} bytes allowed`);
        this.hash.update(buf);
        progress.add(buf.length);
        if (!out.write(buf)) await Promise.race([once(out, "drain"), failed]);
      }
      out.end();
      await Promise.race([once(out, "finish"), failed]);
    } catch (e) {
      out.destroy();
      throw e;
    }
    progress.finish();
    this.parts.set(part, { path, bytes: progress.count });
    return progress.count;
  }

  /** The fingerprint of everything received; no part can be added afterwards. */
  fingerprint(): string {
    if (!this.parts.has("metadata")) throw badRequest("Invalid upload: no image data was received");
    this.digest ??= this.hash.digest("hex");
    return this.digest;
  }

  path(part: StagedPart): string | undefined {
    return this.parts.get(part)?.path;
  }

  get size(): number {
    let n = 0;
    for (const p of this.parts.values()) n += p.bytes;
    return n;
  }

  async discard(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
