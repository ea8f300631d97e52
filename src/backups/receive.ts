/**
 * A backup upload, stored as a plain tarball: a compressed one (gzip, xz, zstd, …) is
 * decompressed as it arrives, through the same filter the rest of Lodge uses, so checking every
 * member and then unpacking the tree read it without decompressing it twice. A stream the
 * filter cannot decompress is refused by name; nothing else is judged here.
 */
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import type { Writable } from "node:stream";
import { badRequest } from "../api/errors.js";
import { decompressor, detectFormat } from "../images/format.js";
import { ProgressTracker, progressText } from "../images/progress.js";
import { spawnProcess } from "../sys/spawn.js";

/** Bytes needed to tell the compressed formats apart (xz's magic is the longest). */
const MAGIC_BYTES = 6;

export async function receivePlainTar(
  body: AsyncIterable<Buffer>,
  file: string,
  req: { contentLength?: number; signal?: AbortSignal; onProgress?: (text: string) => void },
): Promise<void> {
  const out = createWriteStream(file, { mode: 0o600 });
  const outDone = new Promise<void>((resolve, reject) => {
    out.once("finish", resolve);
    out.once("error", reject);
  });
  outDone.catch(() => {});
  const progress = new ProgressTracker("backup", (p) => req.onProgress?.(progressText(p)), req.contentLength);
  let sink: Writable | undefined;
  let filter: { done: Promise<void>; kill(): void } | undefined;
  let head: Buffer[] = [];
  let headLength = 0;

  const open = (first: Buffer): Writable => {
    const fmt = detectFormat(first);
    const filterCmd = fmt?.kind === "tar" ? decompressor(fmt.compression) : undefined;
    if (!filterCmd || fmt?.kind !== "tar") return out;
    const child = spawnProcess(filterCmd[0], filterCmd[1], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdin!.on("error", () => {});
    child.stdout!.pipe(out);
    const what = fmt.compression;
    filter = {
      done: new Promise<void>((resolve, reject) => {
        child.once("error", reject);
        child.once("close", (code: number | null) =>
          code === 0 ? resolve() : reject(badRequest(`Invalid backup: the ${what} stream cannot be decompressed (${stderr.trim().split("\n").pop() || `exit ${code}`})`)),
        );
      }),
      kill: () => child.kill("SIGKILL"),
    };
    filter.done.catch(() => {});
    return child.stdin!;
  };
  const write = async (chunk: Buffer) => {
    if (!sink!.write(chunk)) await Promise.race([once(sink!, "drain"), outDone, ...(filter ? [filter.done] : [])]);
  };

  try {
    for await (const chunk of body) {
      req.signal?.throwIfAborted();
      progress.add(chunk.length);
      if (sink) {
        await write(chunk);
        continue;
      }
      head.push(chunk);
      headLength += chunk.length;
      if (headLength < MAGIC_BYTES) continue;
      const first = Buffer.concat(head);
      head = [];
      sink = open(first);
      await write(first);
    }
    if (!sink) {
      const first = Buffer.concat(head);
      sink = open(first);
      if (first.length) await write(first);
    }
    sink.end();
    if (filter) await filter.done;
    await outDone;
  } catch (e) {
    filter?.kill();
    out.destroy();
    throw e;
  }
  progress.finish();
}
