/**
 * The liblxc container driver, through liblxc's own tools.
 *
 * Layout: LXCPATH/NAME/{config, seccomp, lxc.log, console.log, monitor.pid}; the rootfs is
 * elsewhere (the storage layer's). The config is generated whole at every start.
 *
 * Start is `lxc-start -d` rather than `-F`: -d daemonizes the monitor, so the container
 * survives a daemon restart (a -F child would be tied to our process), and it returns only
 * once liblxc reports RUNNING, with the monitor's pid in the pidfile. The init pid is then
 * read from /proc (polled with backoff, normally found at the first look).
 *
 * Ids: the tools run without the newuidmap/newgidmap helpers on PATH (tools.ts says why).
 */
import { access, mkdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Cgroup, pollUntil, removeCgroups } from "../../../sys/cgroup.js";
import { run } from "../../../sys/exec.js";
import { hostFacts } from "../../../sys/host.js";
import {
  InstanceDriverError,
  NotRunningError,
  type ContainerDriver,
  type ContainerSpec,
  type DriverCapabilities,
  type ExecProcess,
  type ExecRequest,
  type HotplugResult,
  type InstanceState,
  type InstanceStatus,
  type StartResult,
  type StopOptions,
} from "../../driver.js";
import { nicHostProblem } from "../../nic-parents.js";
import { diffRunConfigs, type ResourceLimits, type RunConfig } from "../../runconfig.js";
import { renderLxcConfig, SECCOMP_POLICY, type LxcHostFacts } from "./config.js";
import { DeviceNodes, hotplugHelperPath } from "./devnodes.js";
import { applyHotplug } from "./hotplug.js";
import { applyNicHostSides, removeNicHostSides } from "./nic-host.js";
import { spawnAttach } from "./exec.js";
import { ExecAgents } from "./exec-agents.js";
import type { AgentLaunch } from "./exec-agent.js";
import { agentLaunches, type AgentLaunchSpec } from "./agent-launch.js";
import { atomicWrite, checkRootfsPath, checkSubmounts, restrictEntries } from "./host-checks.js";
import { setLiveLimits } from "./limits.js";
import { startFailure } from "./start-failure.js";
import { chooseOwnership, prepareRootfs, type OwnershipPolicy } from "./ownership.js";
import { ProxyForwarders } from "./proxy.js";
import { StagedMounts } from "./staged-mounts.js";
import { containerState } from "./state.js";
import { waitForExit } from "../../../sys/proc.js";
import { findProcesses } from "./process.js";
import { watchMonitorExit } from "./stop-watch.js";
import { findLxcTools, probeLxcHostFacts, type LxcTools } from "./tools.js";

export interface LxcDriverOptions {
  /** liblxc's lxcpath: one directory per container below it. */
  lxcpath: string;
  /** liblxc log level for lxc.log (TRACE…FATAL); default WARN. */
  logLevel?: string;
  /** Rootfs ownership: auto (idmapped when supported, else shift), or forced. */
  ownership?: OwnershipPolicy;
  /** Exec through a per-container agent (default true); false: one lxc-attach per exec. */
  execAgent?: boolean;
  /** How long start may take to show an init process; default 10 s. */
  startTimeoutMs?: number;
  /** Where unix devices' nodes are made, one directory per container; default LXCPATH/../devices. */
  devicesDir?: string;
  /** Where read-only disks are staged for a start, one directory per container; default LXCPATH/../mounts. */
  mountsDir?: string;
  /** Start exec agents with lodge-attach where it confines exactly as lxc-attach (default true). */
  nativeAttach?: boolean;
}

export class LxcDriver implements ContainerDriver {
  readonly type = "container" as const;
  readonly capabilities: DriverCapabilities = {
    liveLimits: true,
    freeze: true,
    exec: true,
    consoleLog: true,
    survivesDaemonRestart: true,
    statefulStop: false,
    nics: true,
    idmap: true,
    hostTemplates: true,
  };
  readonly lxcpath: string;
  private tools?: Promise<LxcTools>;
  private readonly agents = new ExecAgents((name) => this.agentLaunches(name));
  private facts?: Promise<LxcHostFacts>;
  private readonly proxies: ProxyForwarders;

  private readonly nodes: DeviceNodes;
  private readonly staged: StagedMounts;

  constructor(private readonly opts: LxcDriverOptions) {
    this.lxcpath = path.resolve(opts.lxcpath);
    this.proxies = new ProxyForwarders((n) => this.dir(n));
    this.nodes = new DeviceNodes(path.resolve(opts.devicesDir ?? path.join(this.lxcpath, "..", "devices")));
    this.staged = new StagedMounts(path.resolve(opts.mountsDir ?? path.join(this.lxcpath, "..", "mounts")), hotplugHelperPath);
  }

  dir(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.length > 200) throw new InstanceDriverError(`"${name}" is not a valid liblxc container name`);
    return path.join(this.lxcpath, name);
  }
  consoleLogPath(name: string): string {
    return path.join(this.dir(name), "console.log");
  }
  logPath(name: string): string {
    return path.join(this.dir(name), "lxc.log");
  }
  private pidfile(name: string): string {
    return path.join(this.dir(name), "monitor.pid");
  }

  private toolsReady(): Promise<LxcTools> {
    return (this.tools ??= findLxcTools());
  }

  private hostFacts(): Promise<LxcHostFacts> {
    return (this.facts ??= probeLxcHostFacts());
  }

  async info(): Promise<{ name: string; version: string } | undefined> {
    const ok = await this.toolsReady().then(() => true, () => false);
    const version = ok ? (await hostFacts()).lxcVersion : undefined;
    return version ? { name: "lxc", version } : undefined;
  }

  async init(): Promise<number> {
    const [a, b] = await Promise.all([restrictEntries(this.lxcpath), this.nodes.init(), this.staged.init()]);
    return a + b;
  }

  async create(spec: ContainerSpec): Promise<void> {
    const dir = this.dir(spec.name);
    await mkdir(this.lxcpath, { recursive: true, mode: 0o711 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new InstanceDriverError(`container ${spec.name} already exists in ${this.lxcpath}`);
      throw e;
    }
    try {
      await this.writeConfig(spec, await chooseOwnership(spec, this.opts.ownership ?? "auto"));
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async writeConfig(spec: ContainerSpec, ownership: Awaited<ReturnType<typeof chooseOwnership>>): Promise<void> {
    const dir = this.dir(spec.name);
    const sourceKinds = new Map<string, "dir" | "file">();
    await Promise.all(
      spec.run.mounts.map(async (m) => {
        const st = await stat(m.source).catch(() => undefined);
        if (st) sourceKinds.set(m.source, st.isDirectory() ? "dir" : "file");
      }),
    );
    const seccomp = path.join(dir, "seccomp");
    await this.nodes.prepare(spec);
    const config = renderLxcConfig({
      spec,
      ownership,
      host: await this.hostFacts(),
      paths: { consoleLog: this.consoleLogPath(spec.name), seccomp, devices: this.nodes.dir(spec.name) },
      sourceKinds,
    });
    await Promise.all([atomicWrite(path.join(dir, "config"), config), atomicWrite(seccomp, SECCOMP_POLICY)]);
  }

  async start(spec: ContainerSpec): Promise<StartResult> {
    const tools = await this.toolsReady();
    const name = spec.name;
    if ((await findProcesses(this.pidfile(name), this.lxcpath, name))?.init) throw new InstanceDriverError(`container ${name} is already running`);
    await access(this.dir(name)).catch(() => {
      throw new InstanceDriverError(`container ${name} does not exist in ${this.lxcpath}`);
    });
    await checkRootfsPath(spec);
    await checkSubmounts(spec);
    for (const nic of spec.run.nics) {
      const problem = await nicHostProblem(nic);
      if (problem) throw new InstanceDriverError(`container ${name} failed to start: nic ${nic.name}: ${problem}`);
    }
    const ownership = await chooseOwnership(spec, this.opts.ownership ?? "auto");
    const rootfsIdmap = await prepareRootfs(spec, ownership);
    const staged = await this.staged.stage(spec, ownership);
    let r;
    const level = this.opts.logLevel ?? "WARN";
    const logFrom = (await stat(this.logPath(name)).catch(() => undefined))?.size ?? 0;
    try {
      await this.writeConfig(staged.spec, ownership);
      await rm(this.pidfile(name), { force: true });
      r = await run(tools.start, ["-d", "-n", name, "-P", this.lxcpath, "-o", this.logPath(name), "-l", level, "-p", this.pidfile(name)], {
        env: tools.env,
        allowFail: true,
      });
    } finally {
      // lxc-start is back once the container runs (or failed): liblxc is done with them.
      // A staging mount left here (the helper failed) is cleared at the next start or daemon start.
      await staged.release().catch(() => undefined);
    }
    if (r.code !== 0) {
      const why = startFailure(await readFile(this.logPath(name)).catch(() => Buffer.alloc(0)), logFrom, r.stderr);
      await this.cleanUpAfterMonitor(name);
      throw new InstanceDriverError(`container ${name} failed to start: ${why}`);
    }

    let pid = 0;
    await pollUntil(
      async () => {
        const p = await findProcesses(this.pidfile(name), this.lxcpath, name);
        pid = p?.init ?? 0;
        return pid > 0;
      },
      this.opts.startTimeoutMs ?? 10_000,
      `container ${name} shows no init process`,
    );
    // The exec agent starts now that init runs, alongside the rest of the start and the
    // caller's bookkeeping and reply, so a client's next request finds it ready. The start does
    // not wait for it: measured through the lxc client, waiting made start → first exec slower
    // (the agent's start then no longer overlaps the client's own work).
    void this.agents.get(name).catch(() => undefined);
    // Proxy devices' forwarders, once init runs (proxy.ts), and the NICs' host-side filters and
    // rates; a start they fail leaves nothing running.
    await Promise.all([this.proxies.sync(name, pid, spec.run.proxies), applyNicHostSides(this.dir(name), name, spec.run.nics)]).catch(async (e: Error) => {
      await this.stop(name, { force: true }).catch(() => undefined);
      throw new InstanceDriverError(`container ${name} failed to start: ${e.message}`);
    });
    return { pid, rootfsIdmap };
  }

  /** The ways to start a container's exec agent, best first (agent-launch.ts). */
  private async agentLaunches(name: string): Promise<AgentLaunchSpec[]> {
    const [tools, facts, procs] = await Promise.all([this.toolsReady(), this.hostFacts(), findProcesses(this.pidfile(name), this.lxcpath, name)]);
    return agentLaunches({ name, lxcpath: this.lxcpath, dir: this.dir(name), tools, apparmor: !!facts.apparmor, init: procs?.init, native: this.opts.nativeAttach !== false });
  }

  /** How the running container's exec agent was started (one is started, as for an exec, if none runs). */
  async execAgentVia(name: string): Promise<AgentLaunch["via"] | undefined> {
    const agent = await this.agents.get(name).catch(() => null);
    return agent?.alive ? agent.via : undefined;
  }

  async stop(name: string, opts: StopOptions = {}): Promise<void> {
    await this.proxies.stopAll(name);
    await removeNicHostSides(this.dir(name), name);
    const procs = await findProcesses(this.pidfile(name), this.lxcpath, name);
    if (!procs) {
      this.agents.drop(name);
      return this.cleanUpAfterAttach(name);
    }
    const tools = await this.toolsReady();
    if (procs.init) {
      // A frozen init cannot handle the halt signal (and a kill is only delivered on thaw).
      const cg = await Cgroup.ofPid(procs.init).catch(() => undefined);
      if (cg && (await cg.frozen())) await cg.setFrozen(false);
      const timeoutS = Math.max(1, Math.ceil((opts.timeoutMs ?? 30_000) / 1000));
      const args = ["-n", name, "-P", this.lxcpath, ...(opts.force ? ["-k"] : ["-t", String(timeoutS)])];
      const r = await run(tools.stop, args, { env: tools.env, allowFail: true });
      // Exit 2: it was already stopping or stopped; anything else is worth telling.
      if (r.code !== 0 && r.code !== 2 && (await findProcesses(this.pidfile(name), this.lxcpath, name))?.init) {
        throw new InstanceDriverError(`container ${name} did not stop: ${r.stderr.trim()}`);
      }
    }
    // The monitor removes the cgroups and the pidfile as it exits: wait for that.
    await waitForExit(procs.monitor, 10_000);
    // The exec agent went down with the container; ending it before a clean stop instead
    // costs busybox's init most of a second (an orphan's exit during its shutdown).
    this.agents.drop(name);
    await this.cleanUpAfterAttach(name);
  }

  /**
   * An lxc-attach caught by the container's end (its helper waits outside the pid namespace,
   * inside the container's cgroups) can make the monitor's clean-up miss them: once it is
   * gone, remove what is left.
   */
  private async cleanUpAfterAttach(name: string): Promise<void> {
    await this.agents.attachesDone(name);
    if (await findProcesses(this.pidfile(name), this.lxcpath, name)) return;
    await removeCgroups((await this.hostFacts()).cgroup, [`lxc.monitor.${name}`, `lxc.payload.${name}`]);
  }

  /**
   * Waits for a monitor that is going away, then removes cgroups liblxc left behind: an
   * aborted start can leave an empty lxc.monitor.NAME, which would also break the next start.
   */
  private async cleanUpAfterMonitor(name: string): Promise<void> {
    const procs = await findProcesses(this.pidfile(name), this.lxcpath, name);
    if (procs) await waitForExit(procs.monitor, 10_000).catch(() => undefined);
    await rm(this.pidfile(name), { force: true });
    await removeCgroups((await this.hostFacts()).cgroup, [`lxc.monitor.${name}`, `lxc.payload.${name}`]);
  }

  private async runningCgroup(name: string): Promise<{ init: number; cg: Cgroup }> {
    const procs = await findProcesses(this.pidfile(name), this.lxcpath, name);
    if (!procs?.init) throw new NotRunningError(`container ${name} is not running`);
    return { init: procs.init, cg: await Cgroup.ofPid(procs.init) };
  }

  async freeze(name: string): Promise<void> {
    await (await this.runningCgroup(name)).cg.setFrozen(true);
  }

  async unfreeze(name: string): Promise<void> {
    await (await this.runningCgroup(name)).cg.setFrozen(false);
  }

  async status(name: string): Promise<{ status: InstanceStatus; pid: number }> {
    const procs = await findProcesses(this.pidfile(name), this.lxcpath, name);
    if (!procs?.init) return { status: "Stopped", pid: 0 };
    const cg = await Cgroup.ofPid(procs.init).catch(() => undefined);
    if (!cg) return { status: "Stopped", pid: 0 };
    return { status: (await cg.frozen()) ? "Frozen" : "Running", pid: procs.init };
  }

  async state(name: string): Promise<InstanceState> {
    return containerState((await findProcesses(this.pidfile(name), this.lxcpath, name))?.init);
  }

  async exec(name: string, req: ExecRequest): Promise<ExecProcess> {
    const tools = await this.toolsReady();
    if (!req.pty && this.opts.execAgent !== false) {
      const agent = await this.agents.get(name).catch(() => undefined);
      if (agent?.alive) {
        try {
          return agent.exec(req);
        } catch {
          // The agent stopped answering (and was dropped): this exec takes lxc-attach.
        }
      }
    }
    return spawnAttach({ lxcAttach: tools.attach, script: tools.script, stty: tools.stty, name, lxcpath: this.lxcpath, env: tools.env }, req);
  }

  async applyLimits(name: string, limits: ResourceLimits): Promise<void> {
    const { cg } = await this.runningCgroup(name);
    await setLiveLimits(cg, limits);
  }

  watchStop(name: string, onMaybeStopped: () => void): () => void {
    return watchMonitorExit(this.dir(name), path.basename(this.pidfile(name)), onMaybeStopped);
  }

  async delete(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const procs = await findProcesses(this.pidfile(name), this.lxcpath, name);
    if (procs) {
      if (!opts.force && procs.init) throw new InstanceDriverError(`container ${name} is running; stop it first`);
      await this.stop(name, { force: true });
    }
    await this.proxies.stopAll(name);
    await removeNicHostSides(this.dir(name), name);
    await this.cleanUpAfterMonitor(name);
    await this.nodes.removeAll(name);
    await this.staged.clear(name);
    await rm(this.dir(name), { recursive: true, force: true });
  }

  /** Mounts, device nodes, device rules, NICs and proxy forwarders changed on the running container. */
  async hotplug(spec: ContainerSpec, from: RunConfig): Promise<HotplugResult> {
    const { init, cg } = await this.runningCgroup(spec.name);
    const ownership = await chooseOwnership(spec, this.opts.ownership ?? "auto");
    const diff = diffRunConfigs(from, spec.run);
    // Proxy forwarders first (proxy.ts): put back as they were when the rest fails.
    if (diff.proxiesChanged) await this.proxies.sync(spec.name, init, spec.run.proxies);
    try {
      const result = await applyHotplug({ spec, init, cgroup: cg, ownership, nodes: this.nodes, helper: hotplugHelperPath() }, diff);
      await applyNicHostSides(this.dir(spec.name), spec.name, spec.run.nics);
      return result;
    } catch (e) {
      if (diff.proxiesChanged) await this.proxies.sync(spec.name, init, from.proxies).catch(() => undefined);
      throw e;
    }
  }
}
