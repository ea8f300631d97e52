/**
 * File access inside an instance, for the instance file API. Every call spawns the
 * lodge-fileio helper (native/fileio/lodge-fileio.c), which enters the container — its user
 * and mount namespaces and its root for a running one, a chroot plus a user namespace with the
 * instance's id map for a stopped one — before it resolves a path. So a symlink made inside the
 * container resolves inside it, `..` stops at its root, and ids are the container's ids. Node
 * itself never joins an instance path onto a host path.
 */
import { spawnProcess as spawn, type SpawnedChild as ChildProcess } from "../../sys/spawn.js";
import { nativePath } from "../../sys/native.js";
import { PassThrough, type Readable } from "node:stream";
import { ApiError } from "../../api/errors.js";

/** One line of an id map: `range` ids from `nsid` inside map to `hostid` on the host. */
export interface IdMapRange {
  nsid: number;
  hostid: number;
  range: number;
}

/**
 * Where the files are. A running container is entered through its init's namespaces; a
 * stopped one is its rootfs directory, seen through its id map (omit both maps for a
 * privileged container, or for a rootfs whose ownership is unshifted because it is idmapped
 * only while mounted at start).
 */
export type FileTarget =
  | { pid: number; instance?: string }
  | { rootfs: string; uidmap?: readonly IdMapRange[]; gidmap?: readonly IdMapRange[]; instance?: string };

export type FileType = "file" | "directory" | "symlink";

/** What lstat(2) says of a path, with the container's ids. */
export interface FileStat {
  /** LXD's three types; devices, FIFOs and sockets are "file" with `special` set. */
  type: FileType;
  special: boolean;
  /** Permission bits, including set-id and sticky bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** For a symlink: its target, as stored. */
  target?: string;
  /** For a directory: entry names, sorted, without "." and "..". */
  entries?: string[];
}

/** Ownership and mode for what a call creates; an existing file keeps its own (LXD's rule). */
export interface CreateOptions {
  uid?: number;
  gid?: number;
  mode?: number;
}

export interface WriteOptions extends CreateOptions {
  /** Append to an existing file instead of creating or truncating it. */
  append?: boolean;
}

export interface InstanceFilesOptions {
  /** The helper binary; default: $LODGE_FILEIO, else lodge-fileio in the built dist/. */
  helper?: string;
  /** Limit for calls that move no file body (stat, mkdir, symlink, delete). */
  timeoutMs?: number;
}

/** The helper's exit codes (see the C source). */
const EXIT = { other: 1, notFound: 2, permission: 3, enter: 4, exists: 5 } as const;

/**
 * The helper binary: $LODGE_FILEIO, else beside the bundled daemon (dist/lodged.js), else the
 * repository's dist/ when running from source.
 */
export function fileioHelperPath(): string {
  return nativePath("lodge-fileio", "LODGE_FILEIO");
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export class InstanceFiles {
  private readonly helper: string;
  private readonly timeoutMs: number;

  constructor(
    readonly target: FileTarget,
    opts: InstanceFilesOptions = {},
  ) {
    this.helper = opts.helper ?? fileioHelperPath();
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async stat(p: string): Promise<FileStat> {
    const file = normalize(p);
    const out = await this.simple("stat", [file], file);
    try {
      return JSON.parse(out.toString("utf8")) as FileStat;
    } catch {
      throw new Error(`lodge-fileio printed unreadable stat output for "${file}"`);
    }
  }

  /**
   * The bytes of a regular file (symlinks followed, inside the instance). Resolves once the
   * first bytes arrive or the helper has finished, so a missing file rejects with a 404
   * rather than failing a stream already answered; a later failure destroys the stream.
   * Destroying the stream stops the helper.
   */
  async read(p: string): Promise<Readable> {
    const file = normalize(p);
    const child = this.spawn(["--", "read", file], ["ignore", "pipe", "pipe"]);
    const out = new PassThrough();
    child.stdout!.pipe(out, { end: false });
    let settled = false;
    let failure: Error | undefined;
    const finished = this.exit(child).then((r) => {
      if (r.code === 0) return void out.end();
      failure = this.failure(r, "read", file);
      if (settled) out.destroy(failure);
      else out.destroy();
    });
    const firstBytes = new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
    await Promise.race([firstBytes, finished]);
    settled = true;
    if (failure) throw failure;
    out.once("close", () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    return out;
  }

  /**
   * Writes `data` to the file: created (with opts' owner and mode) or truncated, or appended
   * to with `append`. Symlinks are followed inside the instance. If `data` fails midway the
   * helper is killed and the error rethrown; the file then holds what arrived.
   */
  async write(p: string, data: Readable | Buffer | string, opts: WriteOptions = {}): Promise<void> {
    const file = normalize(p);
    const flags = createFlags(opts);
    if (opts.append) flags.push("--append");
    const child = this.spawn([...flags, "--", "write", file], ["pipe", "pipe", "pipe"]);
    // The helper may exit before reading everything (a bad path); its exit code says why.
    child.stdin!.on("error", () => {});
    let sourceError: Error | undefined;
    if (typeof data === "string" || Buffer.isBuffer(data)) {
      child.stdin!.end(data);
    } else {
      data.once("error", (e: Error) => {
        sourceError = e;
        child.kill("SIGKILL");
      });
      data.pipe(child.stdin!);
    }
    const r = await this.exit(child);
    if (typeof data !== "string" && !Buffer.isBuffer(data)) data.unpipe(child.stdin!);
    if (sourceError) throw sourceError;
    if (r.code !== 0) throw this.failure(r, "write", file);
  }

  /** Creates a directory (default mode 0750, as LXD); succeeds when the path exists. */
  async mkdir(p: string, opts: CreateOptions = {}): Promise<void> {
    const file = normalize(p);
    await this.simple("mkdir", [file], file, createFlags(opts));
  }

  /** Creates symlink `p` → `target`; succeeds when it exists with that target already. */
  async symlink(target: string, p: string, opts: Omit<CreateOptions, "mode"> = {}): Promise<void> {
    const file = normalize(p);
    if (target === "") throw new ApiError(400, `Empty symlink target for "${file}"`);
    if (target.includes("\0")) throw new ApiError(400, `Invalid symlink target for "${file}": it contains a NUL byte`);
    await this.simple("symlink", [target, file], file, createFlags(opts));
  }

  /** Removes a file, a symlink (not its target) or an empty directory. */
  async delete(p: string): Promise<void> {
    const file = normalize(p);
    await this.simple("delete", [file], file);
  }

  private targetArgs(): string[] {
    const t = this.target;
    if ("pid" in t) {
      if (!Number.isSafeInteger(t.pid) || t.pid <= 0) throw new Error(`Invalid init pid ${t.pid}${this.where()}`);
      return ["--pid", String(t.pid)];
    }
    const args = ["--root", t.rootfs];
    if (t.uidmap?.length || t.gidmap?.length) {
      if (!t.uidmap?.length || !t.gidmap?.length) throw new Error(`Both a uid map and a gid map are needed${this.where()}`);
      for (const m of t.uidmap) args.push("--uid-map", mapLine(m));
      for (const m of t.gidmap) args.push("--gid-map", mapLine(m));
    }
    return args;
  }

  private spawn(args: string[], stdio: ["pipe" | "ignore", "pipe", "pipe"]): ChildProcess {
    // No environment: the helper needs none, and the instance gets to see none of ours.
    return spawn(this.helper, [...this.targetArgs(), ...args], { stdio, env: {} });
  }

  /** A call without a file body: output collected, bounded by the timeout. */
  private async simple(op: string, operands: string[], file: string, flags: string[] = []): Promise<Buffer> {
    const child = this.spawn([...flags, "--", op, ...operands], ["ignore", "pipe", "pipe"]);
    const out: Buffer[] = [];
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, this.timeoutMs);
    const r = await this.exit(child).finally(() => clearTimeout(timer));
    if (timedOut) throw new ApiError(500, `${op} of "${file}"${this.where()} timed out after ${this.timeoutMs} ms`);
    if (r.code !== 0) throw this.failure(r, op, file);
    return Buffer.concat(out);
  }

  private exit(child: ChildProcess): Promise<Exit> {
    return new Promise((resolve, reject) => {
      let stderr = "";
      child.stderr!.on("data", (c: Buffer) => {
        if (stderr.length < 4096) stderr += c.toString("utf8");
      });
      child.once("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") reject(new Error(`The file helper ${this.helper} is missing: run \`npm run build\``));
        else reject(e);
      });
      child.once("close", (code, signal) => resolve({ code, signal, stderr }));
    });
  }

  private where(): string {
    return this.target.instance ? ` in instance "${this.target.instance}"` : "";
  }

  private failure(r: Exit, op: string, file: string): Error {
    const detail = r.stderr.trim().split("\n").pop() ?? "";
    const where = this.where();
    switch (r.code) {
      case EXIT.notFound:
        return new ApiError(404, `Path "${file}" not found${where} (${detail})`);
      case EXIT.permission:
        return new ApiError(403, `Permission denied on "${file}"${where} (${detail})`);
      case EXIT.exists:
        return new ApiError(409, `Path "${file}" already exists${where} (${detail})`);
      case EXIT.other:
        return new ApiError(400, `Cannot ${op} "${file}"${where}: ${detail}`);
      case EXIT.enter:
        return new ApiError(500, `Cannot enter the instance${where} to ${op} "${file}": ${detail}`);
      default:
        return new Error(`lodge-fileio ${op} "${file}"${where} ended with ${r.signal ?? `exit ${r.code}`}: ${detail}`);
    }
  }
}

/** LXD's rule: the path is always absolute inside the instance ("etc/x" means "/etc/x"). */
function normalize(p: string): string {
  if (p === "") throw new ApiError(400, "Missing path argument");
  if (p.includes("\0")) throw new ApiError(400, `Invalid path ${JSON.stringify(p)}: it contains a NUL byte`);
  return p.startsWith("/") ? p : `/${p}`;
}

function createFlags(opts: CreateOptions): string[] {
  const flags: string[] = [];
  for (const [name, v] of [["uid", opts.uid], ["gid", opts.gid]] as const) {
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xfffffffe) throw new ApiError(400, `Invalid ${name} ${v}`);
    flags.push(`--${name}`, String(v));
  }
  if (opts.mode !== undefined) {
    if (!Number.isSafeInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o7777) throw new ApiError(400, `Invalid mode ${opts.mode}`);
    flags.push("--mode", opts.mode.toString(8));
  }
  return flags;
}

function mapLine(m: IdMapRange): string {
  for (const v of [m.nsid, m.hostid, m.range])
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`Invalid id map line ${JSON.stringify(m)}`);
  return `${m.nsid} ${m.hostid} ${m.range}`;
}
