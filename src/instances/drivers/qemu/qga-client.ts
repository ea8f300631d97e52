/**
 * The GuestAgent over qemu-guest-agent (virtio-serial port org.qemu.guest_agent.0), for images
 * without Lodge's loader. qga speaks JSON commands, one at a time, so this client queues them.
 *
 * What qga cannot do, this client says or works around:
 * - no pty: an interactive exec is refused ("needs Lodge's agent");
 * - no streams: a command's output arrives when it ends (guest-exec-status polled), and its
 *   stdin is not passed on (guest-exec takes input only at the start; the stream is drained);
 * - no stat, mkdir, symlink or delete: those run as commands (stat, mkdir, ln, rm) through
 *   guest-exec, so they need the guest's coreutils;
 * - signals go through `kill` in the guest.
 */
import { randomInt } from "node:crypto";
import type net from "node:net";
import { connectUnix } from "../../../sys/unix-socket.js";
import os from "node:os";
import { PassThrough, Readable, Writable } from "node:stream";
import { ApiError } from "../../../api/errors.js";
import type { ExecProcess, ExecRequest, ExecResult, NetworkInterfaceState } from "../../driver.js";
import type { CreateOptions, FileStat, WriteOptions } from "../../files/fileio.js";
import type { GuestAgent, GuestInfo, GuestState } from "./agent-api.js";

export const QGA_PORT_NAME = "org.qemu.guest_agent.0";
const POLL_MS = 50;
const READ_CHUNK = 48 * 1024;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class PtyNotSupportedError extends ApiError {
  constructor() {
    super(400, "An interactive exec (a pty) needs Lodge's agent in the guest; this VM answers only through qemu-guest-agent, which runs commands without a terminal");
    this.name = "PtyNotSupportedError";
  }
}

export async function connectQga(socketPath: string): Promise<GuestAgent> {
  return new QgaClient(await connectUnix(socketPath));
}

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

export class QgaClient implements GuestAgent {
  private buf = "";
  private queue: Promise<unknown> = Promise.resolve();
  private pending?: Pending;
  private synced?: Promise<void>;
  private closed?: Error;
  /** Set while syncing: the id guest-sync-delimited must echo. */
  private syncId?: number;

  constructor(private readonly sock: net.Socket) {
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => this.onData(d));
    const end = (e: Error) => {
      this.closed ??= e;
      this.pending?.reject(e);
      this.pending = undefined;
    };
    sock.on("error", end);
    sock.on("close", () => end(new Error("the connection to qemu-guest-agent closed")));
  }

  private onData(d: string): void {
    this.buf += d;
    // guest-sync-delimited's answer follows a 0xFF byte; anything before it is stale.
    if (this.syncId !== undefined) {
      const ff = this.buf.lastIndexOf("\xff");
      if (ff < 0) return;
      this.buf = this.buf.slice(ff + 1);
    }
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: any;
      try {
        msg = JSON.parse(Buffer.from(line, "latin1").toString("utf8"));
      } catch {
        continue;
      }
      if (this.syncId !== undefined && msg.return !== this.syncId) continue;
      this.syncId = undefined;
      const p = this.pending;
      this.pending = undefined;
      if (!p) continue;
      if (msg.error) p.reject(new Error(`qemu-guest-agent: ${msg.error.desc ?? msg.error.class}`));
      else p.resolve(msg.return);
    }
  }

  /** One command at a time; rejects after timeoutMs. */
  private command<T = any>(execute: string, args?: object, timeoutMs = 30_000): Promise<T> {
    const run = () =>
      new Promise<T>((resolve, reject) => {
        if (this.closed) return reject(this.closed);
        const timer = setTimeout(() => {
          this.pending = undefined;
          reject(new Error(`qemu-guest-agent did not answer ${execute} within ${timeoutMs} ms`));
        }, timeoutMs);
        this.pending = {
          resolve: (v) => (clearTimeout(timer), resolve(v)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        };
        if (execute === "guest-sync-delimited") {
          this.syncId = (args as { id: number }).id;
          this.sock.write("\xff", "latin1");
        }
        this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + "\n");
      });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private sync(timeoutMs: number): Promise<void> {
    this.synced ??= (async () => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const id = randomInt(1, 2 ** 31);
          await this.command("guest-sync-delimited", { id }, Math.min(1000, Math.max(100, deadline - Date.now())));
          return;
        } catch (e) {
          if (this.closed || Date.now() >= deadline) throw new Error(`qemu-guest-agent did not answer within ${timeoutMs} ms (${(e as Error).message})`);
        }
      }
    })();
    this.synced.catch(() => (this.synced = undefined));
    return this.synced;
  }

  async ready(timeoutMs: number): Promise<GuestInfo> {
    await this.sync(timeoutMs);
    const [info, osinfo, host] = await Promise.all([
      this.command("guest-info"),
      this.command("guest-get-osinfo").catch(() => ({})),
      this.command("guest-get-host-name").catch(() => ({})),
    ]);
    return {
      agent: "qemu-ga",
      version: info.version ?? "",
      os: osinfo.name ?? "",
      osVersion: osinfo["version-id"] ?? "",
      kernelVersion: osinfo["kernel-release"] ?? "",
      hostname: host["host-name"] ?? "",
    };
  }

  async exec(req: ExecRequest): Promise<ExecProcess> {
    if (req.pty) throw new PtyNotSupportedError();
    if (req.command.length === 0) throw new Error("exec: the command is empty");
    await this.sync(30_000);
    const env = Object.entries(req.env ?? { PATH: DEFAULT_PATH }).map(([k, v]) => `${k}=${v}`);
    // qga runs argv as given: cwd and user through a small shell wrapper when asked for.
    let argv = req.command;
    if ((req.cwd && req.cwd !== "/") || req.uid !== undefined || req.gid !== undefined) {
      const user = req.uid !== undefined ? ["setpriv", `--reuid=${req.uid}`, `--regid=${req.gid ?? req.uid}`, "--clear-groups"] : [];
      argv = ["/bin/sh", "-c", 'cd -- "$1" || exit 127; shift; exec "$@"', "sh", req.cwd ?? "/", ...user, ...req.command];
    }
    const { pid } = await this.command<{ pid: number }>("guest-exec", {
      path: argv[0],
      arg: argv.slice(1),
      env,
      "capture-output": true,
    });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const stdin = new Writable({ write: (_c, _e, cb) => cb() }); // not passed on: see the module comment
    const exited = (async (): Promise<ExecResult> => {
      try {
        for (;;) {
          const s = await this.command("guest-exec-status", { pid });
          if (s.exited) {
            if (s["out-data"]) stdout.write(Buffer.from(s["out-data"], "base64"));
            if (s["err-data"]) stderr.write(Buffer.from(s["err-data"], "base64"));
            return { code: s.signal ? 128 + s.signal : (s.exitcode ?? 0) };
          }
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      } catch {
        return { code: 255 };
      } finally {
        stdout.end();
        stderr.end();
      }
    })();
    return {
      pid,
      stdin,
      stdout,
      stderr,
      exited,
      signal: (sig) => {
        const n = os.constants.signals[sig];
        void this.command("guest-exec", { path: "kill", arg: [`-${n}`, String(pid)], env: [`PATH=${DEFAULT_PATH}`] }).catch(() => undefined);
      },
      resize: async () => undefined,
    };
  }

  /** Runs a helper command in the guest; its stdout, or an ApiError from its stderr. */
  private async run(argv: string[], path: string, op: string): Promise<string> {
    const p = await this.exec({ command: argv, env: { PATH: DEFAULT_PATH, LC_ALL: "C" } });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr!.on("data", (d) => (err += d));
    const { code } = await p.exited;
    if (code !== 0) {
      if (/No such file|not found|Not a directory/i.test(err)) throw new ApiError(404, `Path "${path}" not found in the guest (${err.trim()})`);
      if (/Permission denied|Operation not permitted|Read-only/i.test(err)) throw new ApiError(403, `Permission denied on "${path}" in the guest (${err.trim()})`);
      if (/File exists/i.test(err)) throw new ApiError(409, `Path "${path}" already exists in the guest (${err.trim()})`);
      throw new ApiError(400, `Cannot ${op} "${path}" in the guest: ${err.trim() || `exit ${code}`}`);
    }
    return out;
  }

  async stat(p: string): Promise<FileStat> {
    const path = normalize(p);
    const out = await this.run(["stat", "-c", "%F|%a|%u|%g|%s|%Y", "--", path], path, "stat");
    const [kind, mode, uid, gid, size, mtime] = out.trim().split("|");
    const type = kind === "directory" ? "directory" : kind === "symbolic link" ? "symlink" : "file";
    const st: FileStat = {
      type,
      special: !["directory", "symbolic link", "regular file", "regular empty file"].includes(kind!),
      mode: parseInt(mode!, 8),
      uid: Number(uid),
      gid: Number(gid),
      size: Number(size),
      mtime: Number(mtime),
    };
    if (type === "symlink") st.target = (await this.run(["readlink", "--", path], path, "stat")).replace(/\n$/, "");
    if (type === "directory") {
      st.entries = (await this.run(["ls", "-A1", "--", path], path, "stat")).split("\n").filter(Boolean).sort();
    }
    return st;
  }

  async read(p: string): Promise<Readable> {
    const path = normalize(p);
    await this.sync(30_000);
    const handle = await this.command<number>("guest-file-open", { path, mode: "r" }).catch((e) => {
      throw new ApiError(/No such file|not found/i.test(e.message) ? 404 : 400, `Cannot read "${path}" in the guest: ${e.message}`);
    });
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      void this.command("guest-file-close", { handle }).catch(() => undefined);
    };
    const out: Readable = new Readable({
      read: () => {
        this.command("guest-file-read", { handle, count: READ_CHUNK }).then(
          (r: { count: number; "buf-b64": string; eof: boolean }) => {
            if (r.count > 0) out.push(Buffer.from(r["buf-b64"], "base64"));
            if (r.eof || r.count === 0) {
              close();
              out.push(null);
            }
          },
          (e: Error) => out.destroy(e),
        );
      },
      destroy: (e, cb) => {
        close();
        cb(e);
      },
    });
    return out;
  }

  async write(p: string, data: Readable | Buffer, opts: WriteOptions = {}): Promise<void> {
    const path = normalize(p);
    await this.sync(30_000);
    const existed = await this.stat(path).then(() => true, () => false);
    const handle = await this.command<number>("guest-file-open", { path, mode: opts.append ? "a" : "w" }).catch((e) => {
      throw new ApiError(/No such file|not found/i.test(e.message) ? 404 : 400, `Cannot write "${path}" in the guest: ${e.message}`);
    });
    try {
      const chunks = Buffer.isBuffer(data) ? [data] : data;
      for await (const c of chunks as AsyncIterable<Buffer | string>) {
        const b = typeof c === "string" ? Buffer.from(c) : c;
        for (let off = 0; off < b.length; off += READ_CHUNK) {
          await this.command("guest-file-write", { handle, "buf-b64": b.subarray(off, off + READ_CHUNK).toString("base64") });
        }
      }
    } finally {
      await this.command("guest-file-close", { handle }).catch(() => undefined);
    }
    if (!existed) await this.settle(path, opts);
  }

  private async settle(path: string, opts: CreateOptions, defaultMode?: number): Promise<void> {
    if (opts.uid !== undefined || opts.gid !== undefined) {
      await this.run(["chown", "-h", `${opts.uid ?? ""}:${opts.gid ?? ""}`, "--", path], path, "chown");
    }
    const mode = opts.mode ?? defaultMode;
    if (mode !== undefined) await this.run(["chmod", mode.toString(8), "--", path], path, "chmod");
  }

  async mkdir(p: string, opts: CreateOptions = {}): Promise<void> {
    const path = normalize(p);
    if (await this.stat(path).then(() => true, () => false)) return;
    await this.run(["mkdir", "--", path], path, "mkdir");
    await this.settle(path, opts, 0o750);
  }

  async symlink(target: string, p: string, opts: Omit<CreateOptions, "mode"> = {}): Promise<void> {
    const path = normalize(p);
    const cur = await this.run(["readlink", "--", path], path, "symlink").catch(() => undefined);
    if (cur?.replace(/\n$/, "") === target) return;
    await this.run(["ln", "-s", "--", target, path], path, "symlink");
    await this.settle(path, opts);
  }

  async delete(p: string): Promise<void> {
    const path = normalize(p);
    await this.run(["sh", "-c", 'rm -f -- "$1" 2>/dev/null || rmdir -- "$1"; test ! -e "$1" -a ! -L "$1" || rmdir -- "$1"', "sh", path], path, "delete");
  }

  async state(): Promise<GuestState> {
    await this.sync(30_000);
    const ifaces = await this.command<any[]>("guest-network-get-interfaces");
    const network: Record<string, NetworkInterfaceState> = {};
    for (const i of ifaces) {
      const s = i.statistics ?? {};
      network[i.name] = {
        addresses: (i["ip-addresses"] ?? []).map((a: any) => ({
          family: a["ip-address-type"] === "ipv6" ? "inet6" : "inet",
          address: a["ip-address"],
          netmask: String(a.prefix),
          scope: scopeOf(a["ip-address"]),
        })),
        counters: {
          bytes_received: s["rx-bytes"] ?? 0,
          bytes_sent: s["tx-bytes"] ?? 0,
          packets_received: s["rx-packets"] ?? 0,
          packets_sent: s["tx-packets"] ?? 0,
          errors_received: s["rx-errs"] ?? 0,
          errors_sent: s["tx-errs"] ?? 0,
          packets_dropped_inbound: s["rx-dropped"] ?? 0,
          packets_dropped_outbound: s["tx-dropped"] ?? 0,
        },
        hwaddr: i.name === "lo" || i["hardware-address"] === "00:00:00:00:00:00" ? "" : (i["hardware-address"] ?? ""),
        host_name: "",
        mtu: 0,
        state: "up",
        type: i.name === "lo" ? "loopback" : "broadcast",
      };
    }
    const info = await this.run(["sh", "-c", "cat /proc/meminfo; ls -d /proc/[0-9]* | wc -l"], "/proc/meminfo", "read");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(info)?.[1] ?? 0) * 1024;
    const processes = Number(info.trim().split("\n").pop());
    return { network, memory: { usage: kb("MemTotal") - kb("MemAvailable"), total: kb("MemTotal") }, processes };
  }

  close(): void {
    this.sock.destroy();
  }
}

function scopeOf(addr: string): "global" | "link" | "local" {
  if (addr === "::1" || addr.startsWith("127.")) return "local";
  if (/^fe[89ab]/i.test(addr) || addr.startsWith("169.254.")) return "link";
  return "global";
}

function normalize(p: string): string {
  if (p === "") throw new ApiError(400, "Missing path argument");
  if (p.includes("\0")) throw new ApiError(400, `Invalid path ${JSON.stringify(p)}: it contains a NUL byte`);
  return p.startsWith("/") ? p : `/${p}`;
}
