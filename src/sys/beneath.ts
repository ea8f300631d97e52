/**
 * Files that an image or a container made, opened by the daemon (host root) without following
 * their links. A plain open follows a symlink anywhere in the path, so an image's
 * "templates/x -> /etc/shadow" would hand a host file to the container; checking the path
 * first and opening it afterwards leaves a window and misses links in the middle. openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (native/napi/beneath.c) has the kernel refuse both.
 */
import { close, constants, fstat, read, type Stats } from "node:fs";
import { open } from "node:fs/promises";
import { promisify } from "node:util";
import { nativeCalls } from "./native.js";

const fstatFd = promisify(fstat);
const readFd = promisify(read);
const closeFd = promisify(close);

/** Why a file below a directory was refused; `path` is the path below it, `why` says what it is. */
export class BeneathError extends Error {
  constructor(
    readonly code: string,
    readonly path: string,
    readonly why: string,
  ) {
    super(`${path} ${why}`);
  }
}

const WHY: Record<string, string> = {
  ELOOP: "goes through a symbolic link",
  EXDEV: "leads outside its directory",
  ENOENT: "does not exist",
  ENOTDIR: "goes through something that is not a directory",
  ENXIO: "is a FIFO that nothing reads",
};

/** openat2(dirFd, path, flags) below dirFd, following no link; throws BeneathError. */
export function openBeneath(dirFd: number, path: string, flags: number, mode = 0): number {
  const native = nativeCalls();
  // No fallback to a plain open: it would follow the very links this exists to refuse.
  if (!native) throw new BeneathError("ENOSYS", path, "cannot be opened safely: the native module lodge-native.node is not built");
  try {
    return native.openBeneath(dirFd, path, flags, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new BeneathError(code, path, WHY[code] ?? `cannot be opened (${(e as Error).message})`);
  }
}

/** What kind of file st is, for messages ("a FIFO"). */
export function fileKind(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a directory";
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "of an unknown type";
}

/** A regular file opened by openRegularBeneath; close it when done. */
export class RegularFile {
  constructor(
    readonly path: string,
    readonly fd: number,
    readonly stats: Stats,
    private readonly maxBytes: number,
  ) {}

  /** The whole content; refused if it grew past the bound since it was opened. */
  async read(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(65536, this.maxBytes + 1 - total));
      const { bytesRead: n } = await readFd(this.fd, buf, 0, buf.length, total);
      if (n === 0) return Buffer.concat(chunks, total);
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > this.maxBytes) throw new BeneathError("EFBIG", this.path, `is larger than ${this.maxBytes} bytes`);
    }
  }

  close(): Promise<void> {
    return closeFd(this.fd);
  }
}

/**
 * Opens dir/path as a regular file of at most maxBytes, following no link and never blocking
 * (O_NONBLOCK: a FIFO would otherwise stall the open until someone writes to it). Anything
 * else (link, FIFO, device, directory, too large, outside dir) throws a BeneathError.
 */
export async function openRegularBeneath(dir: string, path: string, maxBytes: number): Promise<RegularFile> {
  const d = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") throw new BeneathError("ENOENT", path, `does not exist (nor does ${dir})`);
    throw e;
  });
  let fd: number;
  try {
    fd = openBeneath(d.fd, path, constants.O_RDONLY | constants.O_NONBLOCK);
  } finally {
    await d.close();
  }
  try {
    const stats = await fstatFd(fd);
    if (!stats.isFile()) throw new BeneathError("EINVAL", path, `is not a regular file (it is ${fileKind(stats)})`);
    if (stats.size > maxBytes) throw new BeneathError("EFBIG", path, `is larger than ${maxBytes} bytes`);
    return new RegularFile(path, fd, stats, maxBytes);
  } catch (e) {
    await closeFd(fd);
    throw e;
  }
}

/** The content of dir/path, read as openRegularBeneath allows. */
export async function readRegularBeneath(dir: string, path: string, maxBytes: number): Promise<Buffer> {
  const f = await openRegularBeneath(dir, path, maxBytes);
  try {
    return await f.read();
  } finally {
    await f.close();
  }
}
