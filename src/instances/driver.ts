/**
 * The contract between the instances service and the engines that run instances. The common
 * part (InstanceDriver) covers the lifecycle, state, exec and logs; the container part
 * (ContainerDriver) adds what only a shared kernel allows (id maps, live cgroup limits); a VM
 * driver will add its own (QMP, guest agent) beside it. The service asks `capabilities`,
 * never the driver's name.
 *
 * A driver owns only its own artefacts (for liblxc: the generated config, logs and pidfile);
 * the rootfs belongs to the storage layer and the record to the store. Everything a driver
 * needs after a daemon restart is on disk or in /proc, so a fresh driver object re-attaches
 * to running instances by name.
 */
import type { Readable, Writable } from "node:stream";
import type { InstanceStateNetworkCounters } from "../api/instance.js";
import type { IdmapEntry } from "../sys/idmap.js";
import type { ResourceLimits, RunConfig } from "./runconfig.js";

export type InstanceType = "container" | "virtual-machine";

/** LXD's status names. */
export type InstanceStatus = "Running" | "Stopped" | "Frozen" | "Error";

/** Interface counters, in the API's own shape. */
export type NetworkCounters = InstanceStateNetworkCounters;

/** One address of an interface inside the instance. */
export interface NetworkAddress {
  family: "inet" | "inet6";
  address: string;
  /** Prefix length, as a decimal string ("24"), as LXD reports it. */
  netmask: string;
  /** global, link (link-local) or local (host/loopback). */
  scope: "global" | "link" | "local";
}

/** An interface as the instance sees it (LXD's state.network entries). */
export interface NetworkInterfaceState {
  addresses: NetworkAddress[];
  counters: NetworkCounters;
  /** MAC address; "" when the interface has none (loopback, tunnels) or it could not be read. */
  hwaddr: string;
  /** The host side of the interface (the veth peer of a NIC device); "" when it has none. */
  host_name: string;
  /** 0 when it could not be read. */
  mtu: number;
  /** Administrative state (IFF_UP). */
  state: "up" | "down";
  type: "broadcast" | "loopback" | "point-to-point" | "unknown";
}

export interface InstanceState {
  status: InstanceStatus;
  /** Host pid of the instance's init (container) or QEMU process; 0 when stopped. */
  pid: number;
  /** Tasks in the instance; 0 when stopped. */
  processes: number;
  cpu: { usage_ns: number };
  memory: { usage: number; usage_peak: number; swap_usage: number };
  /** The instance's interfaces as it sees them, by interface name; empty when stopped. */
  network: Record<string, NetworkInterfaceState>;
}

export interface ExecRequest {
  /** argv; the first element is looked up on the instance's PATH. */
  command: string[];
  /** The whole environment of the command (nothing is inherited from the daemon). */
  env?: Record<string, string>;
  /** Working directory inside the instance; default "/". */
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Run on a terminal of this size: stdout carries the terminal's output, stderr is null. */
  pty?: { cols: number; rows: number };
}

export interface ExecResult {
  /** The command's exit code; 128+n when killed by signal n; 127 when it could not be run. */
  code: number;
}

export interface ExecProcess {
  /** Host pid of the process that relays the command's stdio. */
  readonly pid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Separate error output; null on a pty, where it is merged into stdout. */
  readonly stderr: Readable | null;
  readonly exited: Promise<ExecResult>;
  /** Sends a signal to the command. */
  signal(sig: NodeJS.Signals): void;
  /** New terminal size (pty only). */
  resize(cols: number, rows: number): Promise<void>;
}

export interface StopOptions {
  /** Kill at once instead of asking init to shut down. */
  force?: boolean;
  /** How long a clean shutdown may take before the instance is killed; default 30 s. */
  timeoutMs?: number;
}

export interface DriverCapabilities {
  /** Limits change on a running instance without a restart. */
  liveLimits: boolean;
  freeze: boolean;
  exec: boolean;
  /** A console log file is kept (consoleLogPath). */
  consoleLog: boolean;
  /** Running instances outlive the daemon and are found again by name. */
  survivesDaemonRestart: boolean;
  /** Stop may save state (CRIU / VM state file). */
  statefulStop: boolean;
  /** NIC devices of the run-config are applied. */
  nics: boolean;
  /** Instances run in a user namespace with an id map (volatile.idmap.*). */
  idmap: boolean;
  /** Image templates are applied by lodged to the instance's rootfs tree on the host. */
  hostTemplates: boolean;
}

/** What every instance driver is given to run an instance. */
export interface InstanceSpec {
  /** Name unique on this host among this driver's instances (the service adds a project prefix). */
  name: string;
  /** Host path of the root filesystem, prepared by the storage layer. */
  rootfs: string;
  /** Hostname inside; default the name. */
  hostname?: string;
  run: RunConfig;
}

export interface InstanceDriver<S extends InstanceSpec = InstanceSpec> {
  readonly type: InstanceType;
  readonly capabilities: DriverCapabilities;
  /**
   * The engine's name as LXD reports it in environment.driver ("lxc", "qemu") and its version,
   * or undefined when it cannot run instances on this host (its tools are missing).
   */
  info(): Promise<{ name: string; version: string } | undefined>;
  /**
   * At daemon start: makes the driver's host directories, and closes to host users what an
   * older Lodge left open in them. Returns how many entries it had to close.
   */
  init(): Promise<number>;
  /** Writes the driver's own artefacts for a new instance; undone by delete. */
  create(spec: S): Promise<void>;
  /** Starts a stopped instance with the spec as it is now; resolves once it can exec. */
  start(spec: S): Promise<StartResult>;
  stop(name: string, opts?: StopOptions): Promise<void>;
  freeze(name: string): Promise<void>;
  unfreeze(name: string): Promise<void>;
  state(name: string): Promise<InstanceState>;
  /** Status and pid only: the cheap read for lists and checks (a few small files, no counters). */
  status(name: string): Promise<{ status: InstanceStatus; pid: number }>;
  /** Spawns a command inside straight away; errors of the command arrive through `exited`. */
  exec(name: string, req: ExecRequest): Promise<ExecProcess>;
  /**
   * Calls `onMaybeStopped` when the instance may have stopped, whichever way (an API stop, a
   * shutdown from inside, its init killed), without polling: the caller then reads status().
   * Calls may be spurious or repeated; returns the function that ends the watch.
   */
  watchStop(name: string, onMaybeStopped: () => void): () => void;
  /** Removes everything the driver made for the instance; it must be stopped (or force). */
  delete(name: string, opts?: { force?: boolean }): Promise<void>;
  /** The console's output so far (file path), and the engine's own log. */
  consoleLogPath(name: string): string;
  logPath(name: string): string;
}

export interface StartResult {
  pid: number;
  /**
   * How the rootfs is owned on disk after the start (LXD's volatile.last_state.idmap): null
   * when untouched (idmapped mount or privileged), else the map it was shifted to. The
   * service stores it and hands it back as `rootfsIdmap` next time.
   */
  rootfsIdmap: IdmapEntry[] | null;
}

/** Containers: a shared kernel, so id maps and live cgroup limits. */
export interface ContainerSpec extends InstanceSpec {
  /** security.privileged=true: no user namespace. */
  privileged: boolean;
  /** The instance's map (volatile.idmap.next); required unless privileged. */
  idmap?: IdmapEntry[];
  /** How the rootfs is owned on disk now (volatile.last_state.idmap); null/undefined: as the image has it. */
  rootfsIdmap?: IdmapEntry[] | null;
  /** security.nesting */
  nesting?: boolean;
  /** raw.lxc, appended last (validated by the service). */
  rawLxc?: string;
}

export interface ContainerDriver extends InstanceDriver<ContainerSpec> {
  readonly type: "container";
  /** Applies limits to a running container at once; a limit not given is lifted (the config keeps them for the next start). */
  applyLimits(name: string, limits: ResourceLimits): Promise<void>;
  /**
   * Brings a running container from the run-config `from` to `spec.run` without a restart:
   * mounts and device nodes in and out, device access rules, bridged NICs, proxy forwarders (limits:
   * applyLimits). All or nothing: on failure the steps taken are undone and the error names
   * what failed.
   */
  hotplug(spec: ContainerSpec, from: RunConfig): Promise<HotplugResult>;
}

/**
 * Virtual machines: their own kernel under QEMU. The storage layer gives a root disk image
 * (qcow2 or raw) and, for images that ship them, a kernel and initrd for direct boot; without
 * those the VM boots through UEFI (OVMF). Devices arrive through the same run-config as a
 * container's: NICs become tap devices, disks with a host path become shares, volumes disks.
 */
export interface VmSpec extends InstanceSpec {
  /** Root disk image on the host (qcow2, possibly with a backing file, or raw). */
  rootDisk: string;
  /** Direct kernel boot: the image's kernel and initrd, and the kernel command line. */
  boot?: { kernel: string; initrd?: string; cmdline?: string };
  /** limits.cpu as a count (default 1). */
  cpus: number;
  /** limits.memory in bytes (default 1 GiB). */
  memoryBytes: number;
  /** security.secureboot (UEFI boot only; default true as LXD). */
  secureboot: boolean;
  /** cloud-init.* keys for the NoCloud seed; absent ones are not written. */
  cloudInit: { userData?: string; vendorData?: string; networkConfig?: string };
  /** Host directory holding the instance's own state (NVRAM, config drive, sockets): the volume's. */
  stateDir: string;
}

export interface VmDriver extends InstanceDriver<VmSpec> {
  readonly type: "virtual-machine";
  /** How QEMU accelerates guests here ("kvm" when a probe booted one, else "tcg"). */
  accelerator(): Promise<"kvm" | "tcg">;
  /** The guest agent of a running VM (exec, files, guest state); rejects when it does not answer. */
  agent(name: string): Promise<import("./drivers/qemu/agent-api.js").GuestAgent>;
  /** The serial console's unix socket of a running VM (a byte stream both ways). */
  consoleSocket(name: string): string;
  /** Ends the driver's connections (QMP, agents) at daemon shutdown; the VMs run on. */
  close(): void;
}

export interface HotplugResult {
  /** Run-config parts that changed but wait for the next start (e.g. "nics"). */
  deferred: string[];
}

export class InstanceDriverError extends Error {
  override name = "InstanceDriverError";
}

/** The instance is not running (for exec, freeze, limits). */
export class NotRunningError extends InstanceDriverError {
  override name = "NotRunningError";
}
