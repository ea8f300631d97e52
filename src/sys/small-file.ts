/**
 * Reading the tiny files of /proc, /sys and cgroupfs that state, list, start and exec look at
 * by the dozen (a running container's state is ~30 of them).
 *
 * The reads are synchronous on purpose: these files are made by the kernel on read, from
 * memory, and never wait on a disk, so a read takes microseconds, while sending each through
 * libuv's thread pool costs more than the read itself (measured: one container's state 3.6 ms
 * through the pool, 2.0 ms read here; a list of 10 running containers 23 ms vs 12 ms). Callers
 * that read many instances yield between batches (routes/instances.ts).
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";

/** A small file's text, or undefined when it cannot be read or `accept` refuses what was opened. */
export function readSmallSync(file: string, flags = constants.O_RDONLY, accept?: (st: Stats) => boolean): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, flags | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  try {
    if (accept && !accept(fstatSync(fd))) return undefined;
    const chunks: Buffer[] = [];
    for (;;) {
      const buf = Buffer.allocUnsafe(chunks.length ? 65536 : 4096);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return Buffer.concat(chunks).toString("utf8");
      chunks.push(buf.subarray(0, n));
    }
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** readSmallSync as a promise, for the async code paths that read these files. */
export function readSmall(file: string, flags = constants.O_RDONLY, accept?: (st: Stats) => boolean): Promise<string | undefined> {
  return Promise.resolve(readSmallSync(file, flags, accept));
}
