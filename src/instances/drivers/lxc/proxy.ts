/**
 * The forwarders of a running container's proxy devices: one lodge-proxy process per device
 * (native/proxy), started once the container's init runs. Each detaches into its own session,
 * so it outlives lodged like the container does, and exits by itself when the init exits.
 *
 * Its files are in the container's directory under the lxcpath: proxy.DEVICE.pid (written by
 * the forwarder once it listens, removed as it exits) and proxy.DEVICE.log (its errors). A
 * fresh lodged finds the forwarders again from the pidfiles; a pid counts only while its
 * command line names that pidfile, so a stale file or a reused pid is never mistaken for one.
 * The command line is the whole spec, so comparing it tells whether a forwarder still
 * matches its device (hot-plug).
 */
import { spawnProcess as spawn } from "../../../sys/spawn.js";
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { formatSeconds } from "../../../sys/exec.js";
import { nativePath } from "../../../sys/native.js";
import { InstanceDriverError } from "../../driver.js";
import { formatProxyAddress, type ProxySpec } from "../../devices/proxy.js";
import { startTime, waitForExit } from "../../../sys/proc.js";

/** A forwarder found running for a device. */
export interface RunningForwarder {
  device: string;
  pid: number;
  argv: string[];
}

/** The forwarder binary (native/proxy): $LODGE_PROXY, else lodge-proxy in the built dist/. */
export function proxyHelperPath(): string {
  return nativePath("lodge-proxy", "LODGE_PROXY");
}

const PIDFILE = /^proxy\.(.+)\.pid$/;

/**
 * How long a forwarder may take to listen. With bind=instance its socket is made inside the
 * container, whose root controls the filesystems there (FUSE is bound in): a path under one
 * that never answers would block the start, and the instance's lock with it. It listens within
 * milliseconds otherwise; 10 s, as lodge-hotplug gets (hotplug.ts), leaves room for a loaded host.
 */
export const PROXY_START_TIMEOUT_MS = 10_000;

export class ProxyForwarders {
  constructor(
    /** The container's directory under the lxcpath. */
    private readonly dirOf: (name: string) => string,
    private readonly binary: () => string = proxyHelperPath,
  ) {}

  pidfile(name: string, device: string): string {
    return path.join(this.dirOf(name), `proxy.${device}.pid`);
  }

  logfile(name: string, device: string): string {
    return path.join(this.dirOf(name), `proxy.${device}.log`);
  }

  /** The forwarder's command line for a device of the container whose init is `init`. */
  argv(name: string, init: number, spec: ProxySpec): string[] {
    const args = [this.binary(), "--pid", String(init), "--pidfile", this.pidfile(name, spec.device), "--log", this.logfile(name, spec.device)];
    args.push("--bind", spec.bind, "--listen", formatProxyAddress(spec.listen), "--connect", formatProxyAddress(spec.connect));
    if (spec.listen.protocol === "unix" && !spec.listen.path!.startsWith("@"))
      args.push("--uid", String(spec.uid), "--gid", String(spec.gid), "--mode", spec.mode.toString(8).padStart(4, "0"));
    args.push("--security-uid", String(spec.securityUid), "--security-gid", String(spec.securityGid));
    if (spec.proxyProtocol) args.push("--proxy-protocol");
    args.push("--name", `${name}/${spec.device}`);
    return args;
  }

  /** The forwarders running for a container; stale pidfiles are removed on the way. */
  async running(name: string): Promise<RunningForwarder[]> {
    const entries = await readdir(this.dirOf(name)).catch(() => [] as string[]);
    const found = await Promise.all(
      entries.map(async (entry) => {
        const device = PIDFILE.exec(entry)?.[1];
        if (!device) return undefined;
        const file = path.join(this.dirOf(name), entry);
        const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
        const argv = Number.isSafeInteger(pid) && pid > 0 ? await liveArgv(pid) : undefined;
        const i = argv?.indexOf("--pidfile") ?? -1;
        if (!argv || i < 0 || argv[i + 1] !== file) {
          await rm(file, { force: true });
          return undefined;
        }
        return { device, pid, argv };
      }),
    );
    return found.filter((f): f is RunningForwarder => f !== undefined);
  }

  /**
   * Brings the container's forwarders to `specs`: stops those of devices gone or changed, then
   * starts the missing ones. All or nothing for the starts: when one fails, the ones this call
   * started are stopped again and the error names the device.
   */
  async sync(name: string, init: number, specs: readonly ProxySpec[]): Promise<void> {
    const running = await this.running(name);
    const wanted = new Map(specs.map((s) => [s.device, this.argv(name, init, s)]));
    const same = (f: RunningForwarder) => sameArgv(f.argv, wanted.get(f.device));
    await Promise.all(running.filter((f) => !same(f)).map((f) => this.stopOne(name, f)));
    const keep = new Set(running.filter(same).map((f) => f.device));
    const toStart = specs.filter((s) => !keep.has(s.device));
    const results = await Promise.allSettled(toStart.map((s) => this.startOne(wanted.get(s.device)!, s.device)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (!failed) return;
    const started = new Set(toStart.filter((_, i) => results[i]!.status === "fulfilled").map((s) => s.device));
    await this.stopAll(name, (f) => started.has(f.device));
    throw failed.reason;
  }

  /** Stops the container's forwarders (those `which` picks, default all). */
  async stopAll(name: string, which: (f: RunningForwarder) => boolean = () => true): Promise<void> {
    const running = await this.running(name);
    await Promise.all(running.filter(which).map((f) => this.stopOne(name, f)));
  }

  /**
   * Runs the forwarder's command, which returns once it listens (or says why it cannot). Past
   * PROXY_START_TIMEOUT_MS the command and all it forked are killed: the forwarder is in a
   * session of its own and its helper is inside the container, so killing the command alone
   * would leave both blocked, unseen (no pidfile yet).
   */
  private startOne(argv: string[], device: string): Promise<void> {
    return new Promise((resolve, reject) => {
      // No environment: nothing of lodged's goes into a long-lived process.
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"], env: {} });
      let stderr = "";
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        const why = `the forwarder did not start within ${formatSeconds(PROXY_START_TIMEOUT_MS)} and was killed; a filesystem inside the container may not be answering`;
        void killTree(child.pid).then(() => reject(new InstanceDriverError(`proxy device "${device}": ${why}`)));
      }, PROXY_START_TIMEOUT_MS);
      child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const why = e.code === "ENOENT" ? `the forwarder ${argv[0]} is not built (npm run build)` : e.message;
        reject(new InstanceDriverError(`proxy device "${device}": ${why}`));
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        if (timedOut) return;
        if (code === 0) resolve();
        else reject(new InstanceDriverError(`proxy device "${device}": ${stderr.trim().replace(/^lodge-proxy: /, "") || `forwarder exited with ${code}`}`));
      });
    });
  }

  /** SIGTERM, so it removes its socket files; SIGKILL if it has not gone after 5 s. */
  private async stopOne(name: string, f: RunningForwarder): Promise<void> {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(f.pid, sig);
      } catch {
        /* already gone */
      }
    };
    signal("SIGTERM");
    try {
      await waitForExit(f.pid, 5_000);
    } catch {
      signal("SIGKILL");
      await waitForExit(f.pid, 5_000).catch(() => undefined);
    }
    await rm(this.pidfile(name, f.device), { force: true });
  }
}

/**
 * SIGKILL to a process and everything below it (SIGTERM would not do: a wait on a FUSE server
 * that never answers outlives it), then waits briefly for them to be gone. The tree is read
 * before anything is killed, while each process is still its parent's child.
 */
async function killTree(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  const all: number[] = [];
  const walk = async (p: number): Promise<void> => {
    all.push(p);
    const tasks = await readdir(`/proc/${p}/task`).catch(() => [] as string[]);
    for (const task of tasks) {
      const children = (await readFile(`/proc/${p}/task/${task}/children`, "utf8").catch(() => "")).trim();
      for (const c of children.split(/\s+/).filter(Boolean)) await walk(Number(c));
    }
  };
  await walk(pid);
  for (const p of all) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  await Promise.all(all.map((p) => waitForExit(p, 2_000).catch(() => undefined)));
}

/** The command line of a live (not zombie) process. */
async function liveArgv(pid: number): Promise<string[] | undefined> {
  if ((await startTime(pid)) === undefined) return undefined;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => undefined);
  return cmdline ? cmdline.replace(/\0$/, "").split("\0") : undefined;
}

function sameArgv(a: readonly string[], b: readonly string[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}
