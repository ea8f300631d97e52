/**
 * Where the native parts built from native/ live (scripts/build.mjs puts them in dist/): beside
 * the bundled daemon (dist/lodged.js), else the repository's dist/ when running from source.
 * An environment variable may name another path (e.g. LODGE_FILEIO).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const found = new Map<string, string>();

export function nativePath(file: string, envVar?: string): string {
  const fromEnv = envVar ? process.env[envVar] : undefined;
  if (fromEnv) return fromEnv;
  const known = found.get(file);
  if (known) return known;
  // Bundled: dist/lodged.js → dist/<file>. From source: src/sys → ../../dist/<file>.
  // Bundled CLI chunks sit in dist/cli/ → dist/<file>.
  const candidates = [path.join(here, file), path.join(here, "..", file), path.resolve(here, "../../dist", file)];
  const hit = candidates.find((c) => existsSync(c));
  if (hit) found.set(file, hit);
  return hit ?? candidates[candidates.length - 1]!;
}

/** The N-API module (native/napi): descriptors Node cannot make or send itself. */
export interface NativeCalls {
  /** [read end, write end], close-on-exec. */
  pipe(): [number, number];
  /** A connected AF_UNIX stream pair, close-on-exec. */
  socketPair(): [number, number];
  close(fd: number): void;
  /**
   * Sends all of `data` on a unix socket; `fds` travel with its first byte (SCM_RIGHTS). A
   * full socket buffer is waited for up to waitMs (default 0), then it throws (EAGAIN).
   */
  sendFds(socketFd: number, data: Buffer, fds: number[], waitMs?: number): void;
  /** A listening AF_UNIX stream socket at path (mode 0600). */
  listenUnix(path: string): number;
  /** A socket connected to path; throws when nothing listens. */
  connectUnix(path: string): number;
  /** Blocks up to ms for a connection; -1 when none came. */
  acceptTimeout(fd: number, ms: number): number;
  /** The uid of the peer of a unix socket. */
  peerUid(fd: number): number;
  /** One blocking read and the descriptors that came with it; empty data: closed. */
  recvMsg(fd: number, max: number): { data: Buffer; fds: number[] };
  dup2(oldFd: number, newFd: number): void;
  /**
   * posix_spawn (a vfork: no copy of the daemon's memory). `file`: the program's path, or a
   * descriptor of it (a sealedCopy). fds[i] becomes the child's fd i (-1: /dev/null); onExit
   * gets (code, null) or (null, signal number). Returns the pid; throws (with `code`, e.g.
   * ENOENT) when the program cannot run. spawn.ts wraps it.
   */
  spawn(file: string | number, argv: string[], env: string[], fds: number[], cwd: string | null, setsid: boolean, onExit: (code: number | null, signal: number | null) => void): number;
  /**
   * openat2(dirFd, path) that stays below the directory and follows no link, the last
   * component included (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS); close-on-exec.
   * Throws with `code` (ELOOP: a link; EXDEV: outside). beneath.ts wraps it.
   */
  openBeneath(dirFd: number, path: string, flags: number, mode?: number): number;
  /** The project id of a file and whether a directory passes it on; null: the filesystem keeps none. */
  projectOf(path: string): { id: number; inherit: boolean } | null;
  /**
   * Sets the project id of a directory or regular file (a directory's inherit flag with it);
   * false for any other kind of file, left as it is. Throws with `code`.
   */
  setProject(path: string, id: number, inherit: boolean): boolean;
  /** Usage and hard block limit (0: none) of project `id` where `path` is; null: quotas are off there. */
  projectQuota(path: string, id: number): { bytes: number; inodes: number; limit: number } | null;
  /**
   * The program at `path` copied into a memfd (named `name`) sealed against any change, mode
   * 0555, close-on-exec (sealed-binary.ts keeps one per program). Throws with `code`.
   */
  sealedCopy(path: string, name: string): number;
  /** Sets the hard block limit of project `id` where `path` is (0 lifts it). Throws with `code`. */
  setProjectLimit(path: string, id: number, bytes: number): void;
}

let loaded: NativeCalls | null | undefined;

/** The native module, or null when it was not built (callers fall back to slower paths). */
export function nativeCalls(): NativeCalls | null {
  if (loaded !== undefined) return loaded;
  const file = nativePath("lodge-native.node", "LODGE_NATIVE");
  try {
    loaded = createRequire(import.meta.url)(file) as NativeCalls;
  } catch {
    loaded = null;
  }
  return loaded;
}
