/**
 * Uploading image files to the daemon as `lxc image import` does: a unified tarball is the
 * raw body (octet-stream), a split image is multipart/form-data with "metadata" and "rootfs"
 * parts; options travel in X-LXD-* headers. Progress is counted here while the body streams
 * (the daemon only answers once it has read it all), then taken from the operation.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Transform, type Readable } from "node:stream";
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { multipartBody } from "../images/multipart.js";
import { ProgressTracker, progressText as transferText } from "../images/progress.js";
import { UsageError } from "./exit.js";
import { ProgressRenderer, waitWithProgress } from "./progress.js";

export interface UploadOptions {
  public?: boolean;
  properties?: Record<string, string>;
  /** Aliases to point at the new image (an existing alias of that name is moved). */
  aliases?: string[];
}

/** Uploads `files` ([unified] or [metadata, rootfs]); returns the new image's fingerprint. */
export async function uploadImage(client: LodgeClient, files: string[], opts: UploadOptions = {}): Promise<string> {
  const sizes = await Promise.all(
    files.map(async (f) => {
      const s = await stat(f).catch((e: NodeJS.ErrnoException) => {
        throw new ApiError(400, e.code === "ENOENT" ? `Image file "${f}" not found` : `Cannot read "${f}": ${e.message}`);
      });
      if (!s.isFile()) throw new ApiError(400, `Image file "${f}" is not a regular file`);
      return s.size;
    }),
  );
  const total = sizes.reduce((a, b) => a + b, 0);
  const headers: Record<string, string> = {};
  if (opts.public) headers["X-LXD-public"] = "true";
  if (opts.properties && Object.keys(opts.properties).length)
    headers["X-LXD-properties"] = new URLSearchParams(opts.properties).toString();

  let body: Readable;
  if (files.length === 1) {
    body = createReadStream(files[0]!);
    headers["Content-Type"] = "application/octet-stream";
    headers["Content-Length"] = String(total);
    headers["X-LXD-filename"] = basename(files[0]!);
  } else {
    const mp = multipartBody([
      { name: "metadata", filename: basename(files[0]!), path: files[0]! },
      { name: "rootfs", filename: basename(files[1]!), path: files[1]! },
    ]);
    body = mp.body;
    headers["Content-Type"] = mp.contentType;
  }

  const renderer = new ProgressRenderer();
  const tracker = new ProgressTracker("image", (p) => renderer.show(`Transferring image: ${transferText(p)}`), total);
  const counted = body.pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        tracker.add(chunk.length);
        cb(null, chunk);
      },
      flush(cb) {
        tracker.finish();
        cb();
      },
    }),
  );
  body.on("error", (e) => counted.destroy(e));

  const op = await waitWithProgress(
    client,
    async () => {
      const r = await client.raw<Operation>("POST", "/1.0/images", undefined, { stream: counted, headers });
      if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
      return r.body.metadata;
    },
    { renderer },
  );
  const fingerprint = String((op.metadata as { fingerprint?: unknown } | null)?.fingerprint ?? "");
  if (!fingerprint) throw new ApiError(500, "The upload finished without a fingerprint");
  for (const alias of opts.aliases ?? []) await pointAlias(client, alias, fingerprint);
  return fingerprint;
}

/** Creates alias `name` for `fingerprint`, moving it there if it already names another image. */
export async function pointAlias(client: LodgeClient, name: string, fingerprint: string, description = ""): Promise<void> {
  const path = `/1.0/images/aliases/${encodeURIComponent(name)}`;
  const existing = await client.raw("GET", path);
  if (existing.status === 200) await client.put(path, { target: fingerprint, description });
  else await client.post("/1.0/images/aliases", { name, target: fingerprint, description });
}

/** `k=v` words into a map; a word without "=" is an error naming it. */
export function parseProperties(words: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq <= 0) throw new UsageError(`Invalid property "${w}": expected key=value`);
    out[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return out;
}
