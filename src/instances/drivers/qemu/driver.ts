/**
 * The QEMU virtual machine driver.
 *
 * Layout: ROOT/NAME/{config, qemu.pid, qmp.sock, console.sock, agent.sock, qga.sock, qemu.log,
 * console.log, seed.iso, taps.json, root.format} (ROOT is LODGE_DIR/virtual-machines); the
 * NVRAM and the config drive live in the volume's state directory (VmSpec.stateDir), the disk is
 * the storage layer's. QEMU's arguments are generated whole at every start (config.ts).
 *
 * QEMU daemonizes (launch.ts), so a VM outlives lodged; everything the driver needs later is in
 * that directory and /proc, so a fresh driver finds running VMs by their pidfile and talks to
 * them over their QMP socket. Control (pause, resume, ACPI power button, quit) is QMP; exec,
 * files and the guest's view of its state are the guest agent's (agents.ts).
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { run, which } from "../../../sys/exec.js";
import { agentBinaryPath, CONFIG_DRIVE_FILE } from "./config-drive.js";
import {
  InstanceDriverError,
  NotRunningError,
  type DriverCapabilities,
  type ExecProcess,
  type ExecRequest,
  type InstanceState,
  type InstanceStatus,
  type StartResult,
  type StopOptions,
  type VmDriver,
  type VmSpec,
} from "../../driver.js";
import type { GuestAgent, GuestState } from "./agent-api.js";
import { Agents } from "./agents.js";
import { qemuArgs } from "./config.js";
import { keptDiskFormat } from "./disk.js";
import { prepareFirmware } from "./firmware.js";
import { detectAccelerator, type Accelerator } from "./kvm.js";
import { hostShares, makeAgentDrive } from "./guest-media.js";
import { launchFailure, launchQemu } from "./launch.js";
import { Monitors } from "./monitors.js";
import { vmPaths, type VmPaths } from "./paths.js";
import { findQemu, waitForExit } from "./process.js";
import type { QmpClient } from "./qmp.js";
import { makeSeedIso } from "./seed.js";
import { vmState } from "./state.js";
import { makeTaps, recordedTaps, removeTaps } from "./tap.js";

export interface QemuDriverOptions {
  /** One directory per VM below it: LODGE_DIR/virtual-machines. */
  dir: string;
  /** The QEMU binary; default qemu-system-x86_64 on PATH. */
  qemu?: string;
  /** Skip the KVM probe (tests, or an operator who knows). */
  accelerator?: Accelerator;
  /** The guest agent binary put on the config drive; default dist/lodge-agent. */
  agentBinary?: string;
  /** How long QEMU may take to set the machine up; default 30 s. */
  startTimeoutMs?: number;
}

/** How long state() waits for the guest agent's view before reporting the host's alone. */
const AGENT_STATE_MS = 500;
/** After `quit` or SIGKILL, how long QEMU gets to go away. */
const EXIT_GRACE_MS = 10_000;

/** Promise.all that waits for every step before failing, so the clean-up never races a step still at work. */
async function allSettled<T extends readonly unknown[]>(steps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

export class QemuDriver implements VmDriver {
  readonly type = "virtual-machine" as const;
  readonly capabilities: DriverCapabilities = {
    liveLimits: false,
    freeze: true,
    exec: true,
    consoleLog: true,
    survivesDaemonRestart: true,
    statefulStop: false,
    nics: true,
    // No id map (the guest has its own kernel); templates are the guest's to apply.
    idmap: false,
    hostTemplates: false,
  };
  readonly root: string;
  private readonly monitors = new Monitors();
  private readonly agents = new Agents();
  private qemuPath?: Promise<string | undefined>;

  constructor(private readonly opts: QemuDriverOptions) {
    this.root = path.resolve(opts.dir);
  }

  paths(name: string): VmPaths {
    return vmPaths(this.root, name);
  }
  consoleLogPath(name: string): string {
    return this.paths(name).consoleLog;
  }
  logPath(name: string): string {
    return this.paths(name).log;
  }
  consoleSocket(name: string): string {
    return this.paths(name).console;
  }

  private qemu(): Promise<string | undefined> {
    return (this.qemuPath ??= this.opts.qemu ? Promise.resolve(this.opts.qemu) : which("qemu-system-x86_64"));
  }

  private async qemuOrThrow(): Promise<string> {
    const q = await this.qemu();
    if (!q) throw new InstanceDriverError("qemu-system-x86_64 is not installed: install the qemu-system-x86 package");
    return q;
  }

  async info(): Promise<{ name: string; version: string } | undefined> {
    const q = await this.qemu();
    if (!q) return undefined;
    const r = await run(q, ["--version"], { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
    const version = /version (\d+\.\d+\.\d+)/.exec(r?.stdout ?? "")?.[1];
    return version ? { name: "qemu", version } : undefined;
  }

  async accelerator(): Promise<Accelerator> {
    if (this.opts.accelerator) return this.opts.accelerator;
    return (await detectAccelerator(await this.qemuOrThrow())).accel;
  }

  async init(): Promise<number> {
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    return 0;
  }

  async create(spec: VmSpec): Promise<void> {
    const p = this.paths(spec.name);
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    try {
      await mkdir(p.dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new InstanceDriverError(`VM ${spec.name} already exists in ${this.root}`);
      throw e;
    }
  }

  async start(spec: VmSpec): Promise<StartResult> {
    const qemu = await this.qemuOrThrow();
    const name = spec.name;
    const p = this.paths(name);
    if (await findQemu(p.pidfile)) throw new InstanceDriverError(`VM ${name} is already running`);
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    await mkdir(spec.stateDir, { recursive: true, mode: 0o700 });
    const fail = (why: string) => new InstanceDriverError(`VM ${name} failed to start: ${why}`);
    await this.cleanUp(name); // what a QEMU that died left: taps, sockets, pidfile
    try {
      const [accel, rootFormat, firmware, configDrive, mounts] = await allSettled([
        this.accelerator(),
        keptDiskFormat(spec.rootDisk, path.join(p.dir, "root.format")),
        spec.boot ? Promise.resolve(undefined) : prepareFirmware(spec.stateDir, spec.secureboot),
        makeAgentDrive(spec, this.opts.agentBinary ?? agentBinaryPath(), p.dir),
        hostShares(spec.run.mounts),
        makeSeedIso(p.seed, { instanceId: name, hostname: spec.hostname ?? name, cloudInit: spec.cloudInit }),
      ]);
      const taps = await makeTaps(name, spec.run.nics, p.taps);
      const args = qemuArgs({ spec: { ...spec, run: { ...spec.run, mounts } }, paths: p, accel, rootFormat, firmware, taps, seed: p.seed, configDrive });
      await writeFile(p.config, args.join("\n") + "\n", { mode: 0o600 });
      const r = await launchQemu(qemu, args, p.log, this.opts.startTimeoutMs ?? 30_000);
      if (r.code !== 0) throw new Error(launchFailure(r));
      const pid = await findQemu(p.pidfile);
      if (!pid) throw new Error(`QEMU exited at once: ${launchFailure(r)}`);
      const mon = await this.monitors.get(name, pid, p.qmp);
      await mon.execute("query-status");
      return { pid, rootfsIdmap: null };
    } catch (e) {
      // Nothing of a failed start stays: QEMU, taps, sockets, seed.
      await this.kill(name).catch(() => undefined);
      await this.cleanUp(name);
      throw fail((e as Error).message);
    }
  }

  /** The monitor of a running VM, and its pid; NotRunningError when it does not run. */
  private async running(name: string): Promise<{ pid: number; mon: QmpClient; p: VmPaths }> {
    const p = this.paths(name);
    const pid = await findQemu(p.pidfile);
    if (!pid) throw new NotRunningError(`VM ${name} is not running`);
    try {
      return { pid, mon: await this.monitors.get(name, pid, p.qmp), p };
    } catch (e) {
      if (!(await findQemu(p.pidfile))) throw new NotRunningError(`VM ${name} is not running`);
      throw new InstanceDriverError(`VM ${name}: its QEMU monitor does not answer: ${(e as Error).message}`);
    }
  }

  async stop(name: string, opts: StopOptions = {}): Promise<void> {
    const p = this.paths(name);
    const pid = await findQemu(p.pidfile);
    if (pid && opts.force) await this.kill(name);
    else if (pid) await this.shutdown(name, pid, opts.timeoutMs ?? 30_000);
    await this.cleanUp(name);
  }

  /** ACPI power button, up to timeoutMs for the guest to power off, then `quit`, then SIGKILL. */
  private async shutdown(name: string, pid: number, timeoutMs: number): Promise<void> {
    const { mon } = await this.running(name).catch(() => ({ mon: undefined }));
    if (mon) {
      const gone = mon.whenClosed(); // QEMU exits
      // A paused guest cannot see the button.
      const status = await mon.execute<{ status: string }>("query-status").catch(() => undefined);
      if (status?.status === "paused") await mon.execute("cont").catch(() => undefined);
      await mon.execute("system_powerdown").catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([gone.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
      clearTimeout(timer);
      if (timedOut) await mon.execute("quit").catch(() => undefined);
    }
    try {
      await waitForExit(pid, mon ? EXIT_GRACE_MS : 0);
    } catch {
      await this.kill(name);
    }
  }

  /** SIGKILL to QEMU, and its end waited for. */
  private async kill(name: string): Promise<void> {
    const pid = await findQemu(this.paths(name).pidfile);
    if (!pid) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      return;
    }
    await waitForExit(pid, EXIT_GRACE_MS);
  }

  /** What a stopped VM leaves: connections, taps, sockets, pidfile and seed. */
  private async cleanUp(name: string): Promise<void> {
    const p = this.paths(name);
    if (await findQemu(p.pidfile)) return;
    this.agents.drop(name);
    this.monitors.drop(name);
    await removeTaps(p.taps);
    await Promise.all([p.qmp, p.console, p.agent, p.qga, p.pidfile, p.seed, path.join(p.dir, CONFIG_DRIVE_FILE)].map((f) => rm(f, { force: true })));
  }

  async freeze(name: string): Promise<void> {
    await (await this.running(name)).mon.execute("stop");
  }

  async unfreeze(name: string): Promise<void> {
    await (await this.running(name)).mon.execute("cont");
  }

  async status(name: string): Promise<{ status: InstanceStatus; pid: number }> {
    const p = this.paths(name);
    const pid = await findQemu(p.pidfile);
    if (!pid) return { status: "Stopped", pid: 0 };
    try {
      const mon = await this.monitors.get(name, pid, p.qmp);
      const s = await mon.execute<{ status: string }>("query-status");
      return { status: s.status === "paused" || s.status === "suspended" ? "Frozen" : "Running", pid };
    } catch {
      // Its monitor went away: QEMU is exiting, or is wedged.
      return (await findQemu(p.pidfile)) ? { status: "Error", pid } : { status: "Stopped", pid: 0 };
    }
  }

  async state(name: string): Promise<InstanceState> {
    const p = this.paths(name);
    const { status, pid } = await this.status(name);
    if (!pid) return { status, pid: 0, processes: 0, cpu: { usage_ns: 0 }, memory: { usage: 0, usage_peak: 0, swap_usage: 0 }, network: {} };
    const [taps, guest] = await Promise.all([recordedTaps(p.taps), status === "Running" ? this.guestState(name, pid, p) : undefined]);
    return { ...(await vmState(pid, taps, guest)), status };
  }

  /** The agent's view, if it answers within AGENT_STATE_MS. */
  private async guestState(name: string, pid: number, p: VmPaths): Promise<GuestState | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), AGENT_STATE_MS)));
    const ask = this.agents
      .get(name, pid, p.agent)
      .then((a) => a.state())
      .catch(() => undefined);
    const s = await Promise.race([ask, late]);
    clearTimeout(timer);
    return s;
  }

  async agent(name: string): Promise<GuestAgent> {
    const { pid, p } = await this.running(name);
    return this.agents.get(name, pid, p.agent);
  }

  async exec(name: string, req: ExecRequest): Promise<ExecProcess> {
    return (await this.agent(name)).exec(req);
  }

  /**
   * The VM's QEMU is gone (or going) when its monitor connection closes, which covers a
   * poweroff inside, an API stop and a killed QEMU alike; no polling. A VM that does not run
   * (or whose monitor cannot be reached) gets one call at once.
   */
  watchStop(name: string, onMaybeStopped: () => void): () => void {
    let ended = false;
    let mon: QmpClient | undefined;
    const fire = () => {
      if (!ended) onMaybeStopped();
    };
    const p = this.paths(name);
    void findQemu(p.pidfile)
      .then((pid) => {
        if (!pid) throw new NotRunningError(name);
        return this.monitors.get(name, pid, p.qmp);
      })
      .then(
        (m) => {
          mon = m;
          if (ended) return;
          if (m.closed) return fire();
          m.on("close", fire);
        },
        () => fire(),
      );
    return () => {
      ended = true;
      mon?.off("close", fire);
    };
  }

  async delete(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const p = this.paths(name);
    if (await findQemu(p.pidfile)) {
      if (!opts.force) throw new InstanceDriverError(`VM ${name} is running; stop it first`);
      await this.kill(name);
    }
    await this.cleanUp(name);
    await rm(p.dir, { recursive: true, force: true });
  }

  /** Ends this driver's connections (monitors, agents), as a lodged that exits; VMs keep running. */
  close(): void {
    this.monitors.closeAll();
    this.agents.closeAll();
  }
}
