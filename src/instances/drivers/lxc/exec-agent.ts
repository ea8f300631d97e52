/**
 * The exec agent of a running container (native/execd/lodge-execd.c, see its protocol there).
 *
 * One launch per container run starts the agent inside — native/attach/lodge-attach, which
 * confines it exactly as lxc-attach would (namespaces, cgroups, seccomp, capabilities; see its
 * header), or lxc-attach itself where lodge-attach refuses — and from then on an exec is one
 * message with three descriptors: no lxc-attach and no fork of the (large) daemon per command.
 * The agent binary is static and reaches the container as an inherited descriptor (fd 3), so
 * nothing is copied into the instance. That descriptor, and the program of a launcher that
 * enters the container itself (lodge-attach), is a sealed memfd copy made once per daemon
 * (sys/sealed-binary.ts): from inside, /proc/PID/exe of either leads to an anonymous file no
 * one can write, never to the host's binary (runc's CVE-2019-5736).
 *
 * The agent then leaves its launcher (it lives on under the container's init), so no host
 * process is kept per container. It goes away with its container, or when lodged closes the
 * socket; the next exec starts a new one. Terminals (pty) still go through lxc-attach (exec.ts).
 */
import { spawnProcess as spawn, type SpawnedChild as ChildProcess } from "../../../sys/spawn.js";
import net from "node:net";
import { constants as osConstants } from "node:os";
import type { NativeCalls } from "../../../sys/native.js";
import { sealedBinary } from "../../../sys/sealed-binary.js";
import type { ExecProcess, ExecRequest, ExecResult } from "../../driver.js";
import { envEntries } from "./exec.js";

const T_EXEC = 1;
const T_SIGNAL = 2;
const R_READY = 0;
const R_STARTED = 1;
const R_EXITED = 2;

/** How an agent is started: a program that runs the binary at its fd 3 inside, with fd 0 its socket. */
export interface AgentLaunch {
  via: "lodge-attach" | "lxc-attach";
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** The static agent binary on the host (run from a sealed copy). */
  binary: string;
  /**
   * `command` itself enters the container's pid namespace, where its /proc/PID/exe can be
   * reached: run it from a sealed copy too. (lxc-attach re-executes itself from a memfd.)
   */
  sealed: boolean;
}

interface Pending {
  started: (pid: number) => void;
  exited: (r: ExecResult) => void;
  /** Ends the command's streams on our side: for a command the agent never took. */
  abandon?: () => void;
}

export class ExecAgent {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private inbox: Buffer = Buffer.alloc(0);
  private closed = false;
  readonly ready: Promise<void>;
  private onClose: Array<() => void> = [];

  private constructor(
    private readonly native: NativeCalls,
    private readonly fd: number,
    private readonly socket: net.Socket,
    private readonly child: ChildProcess,
    readyTimeoutMs: number,
    /** What started it (tests check that the native launch is the one in use). */
    readonly via: AgentLaunch["via"],
  ) {
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the exec agent (started by ${via}) did not answer`));
        this.close();
      }, readyTimeoutMs);
      const fail = () => {
        clearTimeout(timer);
        reject(new Error(stderr.trim().split("\n").pop() || "the exec agent could not start"));
      };
      this.onClose.push(fail);
      this.readyHandler = () => {
        this.isReady = true;
        clearTimeout(timer);
        this.onClose = this.onClose.filter((f) => f !== fail);
        resolve();
      };
    });
    this.ready.catch(() => undefined);
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("close", () => this.close());
    socket.on("error", () => this.close());
    this.attachExited = new Promise((r) => {
      child.once("exit", () => r());
      child.once("error", () => r());
    });
    // lxc-attach ends (0) as soon as the agent has settled inside, maybe before its READY is
    // read here; any other end before READY is a failure. (An agent that dies before READY
    // closes the socket, which ends it too.)
    child.on("exit", (code) => {
      if (!this.isReady && code !== 0) this.close();
    });
    // A launcher that cannot be spawned (missing) fails the start, and never the daemon.
    child.on("error", (e: Error) => {
      stderr = e.message;
      this.close();
    });
  }

  private readyHandler?: () => void;
  private isReady = false;
  /** Resolves when the launcher (lodge-attach or lxc-attach) that started the agent has ended. */
  readonly attachExited: Promise<void>;

  /** Starts the agent inside a running container; `ready` resolves once it answered. */
  static start(native: NativeCalls, t: AgentLaunch, readyTimeoutMs = 10_000): ExecAgent {
    // Sealed copies, made once per daemon: a launch copies nothing.
    const bin = sealedBinary(native, t.binary);
    const executable = t.sealed ? sealedBinary(native, t.command) : undefined;
    const [ours, theirs] = native.socketPair();
    try {
      const child = spawn(t.command, t.args, {
        cwd: "/",
        env: t.env,
        stdio: [theirs, "ignore", "pipe", bin],
        detached: false,
        executable,
      });
      const socket = new net.Socket({ fd: ours, readable: true, writable: false });
      return new ExecAgent(native, ours, socket, child, readyTimeoutMs, t.via);
    } catch (e) {
      native.close(ours);
      throw e;
    } finally {
      native.close(theirs);
    }
  }

  get alive(): boolean {
    return !this.closed;
  }

  /** Called once when the agent is gone (container stopped, agent killed, lodged closing it). */
  whenClosed(f: () => void): void {
    if (this.closed) f();
    else this.onClose.push(f);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    for (const p of this.pending.values()) {
      p.abandon?.();
      p.exited({ code: 127 });
    }
    this.pending.clear();
    for (const f of this.onClose.splice(0)) f();
  }

  private receive(chunk: Buffer): void {
    this.inbox = this.inbox.length ? Buffer.concat([this.inbox, chunk]) : chunk;
    while (this.inbox.length >= 16) {
      const len = this.inbox.readUInt32LE(0);
      if (len !== 12) return this.close(); // the agent speaks fixed frames only
      const type = this.inbox.readUInt32LE(4);
      const id = this.inbox.readUInt32LE(8);
      const value = this.inbox.readInt32LE(12);
      this.inbox = this.inbox.subarray(16);
      if (type === R_READY) this.readyHandler?.();
      else if (type === R_STARTED) this.pending.get(id)?.started(value);
      else if (type === R_EXITED) {
        const p = this.pending.get(id);
        this.pending.delete(id);
        p?.exited({ code: value });
      }
    }
  }

  /** Runs a command (not on a terminal) through the agent. */
  exec(req: ExecRequest): ExecProcess {
    if (this.closed) throw new Error("the exec agent has gone away");
    if (req.pty) throw new Error("the exec agent runs commands without a terminal");
    if (req.command.length === 0) throw new Error("exec: the command is empty");
    const env = envEntries(req);
    const strings = [req.cwd || "/", ...req.command, ...env];
    for (const s of strings) if (s.includes("\0")) throw new Error("exec: arguments and environment may not contain NUL bytes");
    const body = Buffer.from(strings.join("\0") + "\0", "utf8");
    const id = this.nextId++;
    const head = Buffer.alloc(28);
    head.writeUInt32LE(8 + 16 + body.length, 0);
    head.writeUInt32LE(T_EXEC, 4);
    head.writeUInt32LE(id, 8);
    head.writeInt32LE(req.uid ?? -1, 12);
    head.writeInt32LE(req.gid ?? -1, 16);
    head.writeUInt32LE(req.command.length, 20);
    head.writeUInt32LE(env.length, 24);

    const n = this.native;
    const stdin = n.pipe();
    const stdout = n.pipe();
    const stderr = n.pipe();
    let exitedResolve!: (r: ExecResult) => void;
    const exited = new Promise<ExecResult>((r) => (exitedResolve = r));
    let pid = 0;
    // An agent that does not take the command within 10 s (its container's root may have
    // stopped it) is dropped; the command counts as not run.
    const notStarted = setTimeout(() => this.close(), 10_000);
    notStarted.unref();
    this.pending.set(id, {
      started: (p) => {
        clearTimeout(notStarted);
        pid = p;
        const entry = this.pending.get(id);
        if (entry) entry.abandon = undefined;
      },
      exited: (r) => {
        clearTimeout(notStarted);
        exitedResolve(r);
      },
    });
    try {
      // Never blocks: an agent that stops reading (its container's root can stop it) is dropped.
      n.sendFds(this.fd, Buffer.concat([head, body]), [stdin[0], stdout[1], stderr[1]]);
    } catch (e) {
      clearTimeout(notStarted);
      this.pending.delete(id);
      for (const fd of [stdin[1], stdout[0], stderr[0]]) n.close(fd);
      this.close();
      throw e;
    } finally {
      // The agent holds its own copies now.
      for (const fd of [stdin[0], stdout[1], stderr[1]]) n.close(fd);
    }
    const inStream = new net.Socket({ fd: stdin[1], readable: false, writable: true });
    inStream.on("error", () => undefined);
    const outStream = new net.Socket({ fd: stdout[0], readable: true, writable: false });
    const errStream = new net.Socket({ fd: stderr[0], readable: true, writable: false });
    // Until the agent reports the command started, its end of the streams may never close.
    const entry = this.pending.get(id);
    if (entry)
      entry.abandon = () => {
        for (const st of [inStream, outStream, errStream]) st.destroy();
      };
    // As a child process's "close": the exit code once the command exited and its output ended.
    const ended = (s: net.Socket) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : s.once("close", () => r())));
    const done = Promise.all([exited, ended(outStream), ended(errStream)]).then(([r]) => r);
    const agent = this;
    return {
      get pid() {
        return pid;
      },
      stdin: inStream,
      stdout: outStream,
      stderr: errStream,
      exited: done,
      signal(sig: NodeJS.Signals) {
        const num = osConstants.signals[sig];
        if (!num || agent.closed) return;
        const f = Buffer.alloc(16);
        f.writeUInt32LE(12, 0);
        f.writeUInt32LE(T_SIGNAL, 4);
        f.writeUInt32LE(id, 8);
        f.writeInt32LE(num, 12);
        try {
          agent.native.sendFds(agent.fd, f, []);
        } catch {
          agent.close();
        }
      },
      async resize() {},
    };
  }
}
