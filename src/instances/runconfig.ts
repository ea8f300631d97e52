/**
 * The run-config: what an instance needs from the host to run, said declaratively. Devices and
 * limits keys each produce a part; the instance driver applies the merged whole, the same
 * way for a container (liblxc config) as for a VM (QEMU arguments), so a device never needs
 * to know which it serves.
 */
import type { ProxySpec } from "./devices/proxy.js";

export type { ProxySpec } from "./devices/proxy.js";

/** A host path made visible inside the instance (disk device). */
export interface MountSpec {
  /** Absolute host path: a directory or a file. */
  source: string;
  /** Absolute path inside the instance. */
  target: string;
  readonly: boolean;
  /** Skip quietly when the source is missing (LXD's `required=false`). */
  optional?: boolean;
  /**
   * Show the source's ownership as the container sees it (LXD's `shift=true`): an idmapped
   * mount, so host uid 0 appears as container uid 0.
   */
  shift?: boolean;
}

/** A network interface (nic device). Declared for the service; drivers say if they can apply it. */
export interface NicSpec {
  /** Name inside the instance, e.g. eth0. */
  name: string;
  /** bridged: a veth pair, the host end attached to `parent`. */
  type: "bridged";
  parent: string;
  hwaddr?: string;
  mtu?: number;
  /** Host-side interface name; the driver picks one when unset. */
  hostName?: string;
}

export interface MemoryLimit {
  bytes: number;
  /** limits.memory.swap: false caps memory+swap at `bytes`. Default true. */
  swap?: boolean;
  /** limits.memory.enforce: soft only reclaims under host pressure. Default hard. */
  enforce?: "hard" | "soft";
}

export interface CpuLimit {
  /** limits.cpu as pinning, a cpuset list such as "0-1" or "0,2". */
  cpuset?: string;
  /** Bandwidth (limits.cpu.allowance "10ms/100ms", or a count without pinning): quota per period. */
  quotaUs?: number;
  periodUs?: number;
  /** Relative weight in v1 shares (limits.cpu.allowance "50%", limits.cpu.priority). */
  shares?: number;
}

export interface ResourceLimits {
  memory?: MemoryLimit;
  cpu?: CpuLimit;
  /** limits.processes */
  processes?: number;
}

/** A raw device-access rule, in the cgroup devices syntax: `c 10:200 rwm`. */
export interface DeviceRule {
  allow: boolean;
  rule: string;
}

export interface RunConfig {
  mounts: MountSpec[];
  nics: NicSpec[];
  limits: ResourceLimits;
  deviceRules: DeviceRule[];
  /** Forwarders between the host and the instance (proxy devices). */
  proxies: ProxySpec[];
}

export function emptyRunConfig(): RunConfig {
  return { mounts: [], nics: [], limits: {}, deviceRules: [], proxies: [] };
}

/** Merges parts in order; later limits override earlier ones field by field. */
export function mergeRunConfigs(...parts: Partial<RunConfig>[]): RunConfig {
  const out = emptyRunConfig();
  for (const p of parts) {
    out.mounts.push(...(p.mounts ?? []));
    out.nics.push(...(p.nics ?? []));
    out.deviceRules.push(...(p.deviceRules ?? []));
    out.proxies.push(...(p.proxies ?? []));
    const l = p.limits ?? {};
    if (l.memory) out.limits.memory = { ...out.limits.memory, ...l.memory };
    if (l.cpu) out.limits.cpu = { ...out.limits.cpu, ...l.cpu };
    if (l.processes !== undefined) out.limits.processes = l.processes;
  }
  const targets = new Set<string>();
  for (const m of out.mounts) {
    if (targets.has(m.target)) throw new Error(`two devices mount onto ${m.target}`);
    targets.add(m.target);
  }
  return out;
}
