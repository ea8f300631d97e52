/**
 * `lodge image export`: GET /1.0/images/<fp>/export, written to files named as LXD names them.
 * A unified image is one file (name from Content-Disposition); a split image arrives as
 * multipart "metadata" and "rootfs" parts, each with its file name. Files are written under a
 * temporary name and renamed at the end, so a failed export leaves nothing behind.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { request, type IncomingMessage } from "node:http";
import { basename, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { ApiError } from "../api/errors.js";
import type { LodgeClient } from "../client/client.js";
import { MultipartReader, multipartBoundary } from "../images/multipart.js";
import { ProgressTracker, progressText as transferText } from "../images/progress.js";
import { ProgressRenderer } from "./progress.js";

/** Where the files go: inside `target` when it is a directory, else `target` + the file's extension. */
export async function exportTargets(target: string, serverNames: string[]): Promise<string[]> {
  const isDir = await stat(target).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (isDir) return serverNames.map((n) => join(target, basename(n)));
  return serverNames.map((n, i) => {
    const ext = extensionOf(n);
    // The rootfs of a split image gets ".root" so both files can share the target's name.
    return `${target}${i > 0 && serverNames.length > 1 ? ".root" : ""}${ext}`;
  });
}

/** ".tar.xz" of "meta-abc.tar.xz", ".squashfs" of "abc.squashfs"; "" when there is none. */
export function extensionOf(name: string): string {
  const base = basename(name);
  const dot = base.indexOf(".");
  return dot === -1 ? "" : base.slice(dot);
}

/** Downloads the image `fingerprint` into `target` (a directory or a base name); returns the paths written. */
export async function exportImage(client: LodgeClient, fingerprint: string, target: string, totalSize?: number): Promise<string[]> {
  // A target ending in "/" names a directory: create it.
  if (/[\\/]$/.test(target)) await mkdir(target, { recursive: true });
  const res = await getRaw(client, `/1.0/images/${fingerprint}/export`);
  const renderer = new ProgressRenderer();
  const length = Number(res.headers["content-length"]);
  const tracker = new ProgressTracker(
    "image",
    (p) => renderer.show(`Exporting the image: ${transferText(p)}`),
    Number.isFinite(length) && length > 0 ? length : totalSize,
  );
  const count = () =>
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        tracker.add(chunk.length);
        cb(null, chunk);
      },
    });
  const written: string[] = [];
  const finals: string[] = [];
  try {
    const boundary = multipartBoundary(res.headers["content-type"]);
    if (!boundary) {
      const name = dispositionFilename(res.headers["content-disposition"]) ?? `${fingerprint}.tar`;
      const [dest] = await exportTargets(target, [name]);
      written.push(partial(dest!));
      finals.push(dest!);
      await pipeline(res, count(), createWriteStream(written[0]!, { mode: 0o644 }));
    } else {
      // Names are known part by part: write each under a temporary name beside its destination.
      const dir = await isDirectory(target);
      const reader = new MultipartReader(res, boundary);
      const names: string[] = [];
      for (let part = await reader.next(); part; part = await reader.next()) {
        const tmp = dir ? join(target, `.lodge-export-${process.pid}-${names.length}`) : `${target}.lodge-export-${process.pid}-${names.length}`;
        written.push(tmp);
        names.push(part.filename || part.name);
        await pipeline(part.data, count(), createWriteStream(tmp, { mode: 0o644 }));
      }
      finals.push(...(await exportTargets(target, names)));
    }
    tracker.finish();
    for (let i = 0; i < written.length; i++) await rename(written[i]!, finals[i]!);
    return finals;
  } catch (e) {
    await Promise.all(written.map((f) => rm(f, { force: true })));
    throw e;
  } finally {
    renderer.done();
  }
}

const partial = (dest: string) => `${dest}.partial-${process.pid}`;

const isDirectory = (p: string) =>
  stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );

function dispositionFilename(disp: string | undefined): string | undefined {
  const m = /filename="?([^";]+)"?/i.exec(disp ?? "");
  return m ? basename(m[1]!.trim()) : undefined;
}

/** A GET whose body is not JSON: resolves with the response once it is 200, else throws its error. */
export function getRaw(client: LodgeClient, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: client.socket, path: client.url(path), method: "GET" }, (res) => {
      if (res.statusCode === 200) return resolve(res);
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let msg = `export failed (${res.statusCode})`;
        try {
          msg = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { error?: string }).error || msg;
        } catch {
          // keep the status message
        }
        reject(new ApiError(res.statusCode ?? 500, msg));
      });
    });
    req.on("error", reject);
    req.end();
  });
}
