import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestContext } from "node:test";
import { LodgeClient } from "../../src/client/client.js";
import { socketPath } from "../../src/api/paths.js";

import { BridgeDriver } from "../../src/networks/drivers/bridge.js";
import { removeNicPolicies } from "../../src/sys/nic-policy.js";
import { findQemu, waitForExit } from "../../src/instances/drivers/qemu/process.js";
import { removeTaps } from "../../src/instances/drivers/qemu/tap.js";
import { nicPolicyOwner } from "../../src/instances/drivers/lxc/nic-host.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const LODGED = join(ROOT, "dist/lodged.js");
export const LODGE = join(ROOT, "dist/lodge.js");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOpts {
  allowFail?: boolean;
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** A real lodged on a temp LODGE_DIR, stopped (and its directory removed) when the test ends. */
export class TestDaemon {
  proc!: ChildProcess;
  client!: LodgeClient;
  private stderr = "";
  private destroyed = false;

  private constructor(readonly dir: string) {}

  get socket(): string {
    return socketPath(this.dir);
  }

  static async start(t: TestContext | undefined, opts: { args?: string[] } = {}): Promise<TestDaemon> {
    const dir = await mkdtemp(join(tmpdir(), "lodge-test-"));
    const d = new TestDaemon(dir);
    t?.after(() => d.destroy());
    await d.launch(opts.args);
    return d;
  }

  /** Starts lodged on this directory and waits until it answers. */
  async launch(args: string[] = []): Promise<void> {
    this.stderr = "";
    this.proc = spawn(process.execPath, [LODGED, "--dir", this.dir, "--log-level", "debug", ...args], {
      env: { ...process.env, LODGE_DIR: this.dir },
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.proc.stderr!.on("data", (c: Buffer) => (this.stderr += c.toString()));
    this.client?.close();
    this.client = new LodgeClient({ socket: this.socket });
    await this.waitReady();
  }

  private async waitReady(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`lodged exited with ${this.proc.exitCode}:\n${this.stderr}`);
      try {
        await this.client.get("/1.0");
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`lodged did not answer in ${timeoutMs} ms: ${(e as Error).message}\n${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
  }

  get log(): string {
    return this.stderr;
  }

  /**
   * Resolves once this run of the daemon has logged a line matching re (no fixed wait: it
   * watches stderr as it comes); rejects if the daemon exits first or after timeoutMs.
   */
  waitForLog(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const find = () => this.stderr.split("\n").find((l) => re.test(l));
    const now = find();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolvePromise, reject) => {
      const done = (err?: Error, line?: string) => {
        clearTimeout(timer);
        this.proc.stderr!.off("data", onData);
        this.proc.off("exit", onExit);
        if (err) reject(err);
        else resolvePromise(line!);
      };
      // Registered after the constructor's listener, so this.stderr already holds the chunk.
      const onData = () => {
        const line = find();
        if (line !== undefined) done(undefined, line);
      };
      const onExit = () => done(new Error(`lodged exited before logging ${re}:\n${this.stderr}`));
      const timer = setTimeout(() => done(new Error(`lodged logged no line matching ${re} within ${timeoutMs} ms:\n${this.stderr}`)), timeoutMs);
      this.proc.stderr!.on("data", onData);
      this.proc.once("exit", onExit);
    });
  }

  async logFile(): Promise<string> {
    return readFile(join(this.dir, "lodged.log"), "utf8");
  }

  /** Graceful stop (SIGTERM); resolves with the exit code. */
  async stop(): Promise<number | null> {
    return this.signal("SIGTERM");
  }

  /** Resolves with the exit code once the daemon has exited by itself (at most timeoutMs). */
  async exited(timeoutMs = 60_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`lodged did not exit within ${timeoutMs} ms`)), timeoutMs);
      this.proc.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Kills the daemon outright, as a crash would. */
  async kill9(): Promise<void> {
    await this.signal("SIGKILL");
  }

  private async signal(sig: NodeJS.Signals): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    const exited = new Promise<number | null>((r) => this.proc.once("exit", (code) => r(code)));
    this.proc.kill(sig);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    await this.signal("SIGKILL").catch(() => {});
    this.client?.close();
    await stopContainers(this.dir);
    await stopVms(this.dir);
    await removeNetworks(this.dir);
    await unmountPools(this.dir);
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Runs the real `lxc` client against this daemon. */
  lxc(args: string[], opts: RunOpts = {}): Promise<RunResult> {
    // After destroy (a later after-hook), lxc would only recreate its config dir in the removed directory.
    if (this.destroyed) {
      const gone = { code: 1, stdout: "", stderr: "the test daemon is gone" };
      return opts.allowFail ? Promise.resolve(gone) : Promise.reject(new Error(`lxc ${args.join(" ")}: ${gone.stderr}`));
    }
    return runCommand("lxc", args, {
      ...opts,
      env: { LXD_SOCKET: this.socket, LXD_CONF: join(this.dir, ".lxc-client"), ...opts.env },
    });
  }

  /** Runs our own `lodge` CLI against this daemon. */
  lodge(args: string[], opts: RunOpts = {}): Promise<RunResult> {
    return runCommand(process.execPath, [LODGE, ...args], { ...opts, env: { LODGE_DIR: this.dir, ...opts.env } });
  }
}

export function runCommand(cmd: string, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const r = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (r.code !== 0 && !opts.allowFail)
        reject(new Error(`${cmd} ${args.join(" ")} exited ${r.code}\nstdout: ${stdout}\nstderr: ${stderr}`));
      else resolvePromise(r);
    });
    // A command that exits without reading its input must not fail the test with EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/**
 * A daemon inside the test process, for tests that need to reach its modules (e.g. create an
 * operation with a chosen body). Clients still talk to it over its real socket.
 */
export async function inProcessDaemon(t: TestContext) {
  const { Daemon } = await import("../../src/daemon/daemon.js");
  const dir = await mkdtemp(join(tmpdir(), "lodge-inproc-"));
  const daemon = await Daemon.start({ dir });
  const client = new LodgeClient({ socket: daemon.socket });
  t.after(async () => {
    client.close();
    await daemon.stop();
    await stopContainers(dir);
    await stopVms(dir);
    await unmountPools(dir);
    await rm(dir, { recursive: true, force: true });
  });
  const lxc = (args: string[], opts: RunOpts = {}) =>
    runCommand("lxc", args, {
      ...opts,
      env: { LXD_SOCKET: daemon.socket, LXD_CONF: join(dir, ".lxc-client"), ...opts.env },
    });
  return { d: daemon, client, dir, lxc };
}

/**
 * Containers outlive their daemon by design, so a test that failed midway may leave some
 * running: kill every container under this daemon's lxcpath before its directory goes.
 */
export async function stopContainers(dir: string): Promise<void> {
  const lxcpath = join(dir, "containers");
  const names = await readdir(lxcpath).catch(() => [] as string[]);
  await Promise.all(
    names.map(async (n) => {
      await runCommand("lxc-stop", ["--kill", "-n", n, "-P", lxcpath], { allowFail: true, timeoutMs: 20_000 });
      // NIC filters (sys/nic-policy.ts) stay in nftables until the daemon's stop removes them.
      await removeNicPolicies(nicPolicyOwner(join(lxcpath, n), n));
    }),
  );
}

/** VMs outlive their daemon too: kill every QEMU under this daemon's directory, remove its taps. */
export async function stopVms(dir: string): Promise<void> {
  const root = join(dir, "virtual-machines");
  for (const n of await readdir(root).catch(() => [] as string[])) {
    const pid = await findQemu(join(root, n, "qemu.pid")).catch(() => undefined);
    if (pid) {
      process.kill(pid, "SIGKILL");
      await waitForExit(pid, 10_000).catch(() => {});
    }
    await removeTaps(join(root, n, "taps.json"));
  }
}

/** What a daemon killed outright leaves of its networks on the host: bridges, dnsmasq, nft tables. */
export async function removeNetworks(dir: string): Promise<void> {
  const runDir = join(dir, "networks");
  const names = await readdir(runDir).catch(() => [] as string[]);
  const driver = new BridgeDriver({ runDir });
  for (const n of names) await driver.remove(n).catch(() => {});
}

/**
 * Unmounts what storage pools mounted under a test daemon's directory (btrfs pools on loop
 * files in <dir>/disks, the overlays of a dir pool's layered volumes), deepest first, and detaches their loop devices, so removing the
 * directory neither descends into a mounted filesystem nor leaves a loop device behind.
 */
export async function unmountPools(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((l) => l.split(" ")[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m): m is string => !!m && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await runCommand("umount", ["-l", m], { allowFail: true });
  const loops = await runCommand("losetup", ["-n", "-O", "NAME,BACK-FILE", "-l"], { allowFail: true });
  for (const line of loops.stdout.split("\n")) {
    const [dev, file] = line.trim().split(/\s+/, 2);
    if (dev && file?.startsWith(`${dir}/`)) await runCommand("losetup", ["-d", dev], { allowFail: true });
  }
}
