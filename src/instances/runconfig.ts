/**
 * The run-config: what an instance needs from the host to run, said declaratively. Devices and
 * limits keys each produce a part; the instance driver applies the merged whole, the same
 * way for a container (liblxc config) as for a VM (QEMU arguments), so a device never needs
 * to know which it serves.
 */
import type { Propagation } from "./config/devices.js";
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
  /** Bind the source's sub-mounts too (LXD's `recursive=true`). */
  recursive?: boolean;
  /** Mount propagation of the bind (LXD's `propagation`); default private. */
  propagation?: Propagation;
}

/** A network interface (nic device). Declared for the service; drivers say if they can apply it. */
export interface NicSpec {
  /** Name inside the instance, e.g. eth0. */
  name: string;
  /**
   * bridged: a veth pair, the host end a port of the bridge `parent` (a managed network's
   * bridge is named after the network); p2p: a veth pair whose host end is left on its own;
   * macvlan: a macvlan interface on the host interface `parent`, in bridge mode.
   */
  type: "bridged" | "p2p" | "macvlan";
  /** The bridge (bridged) or host interface (macvlan); none for p2p. */
  parent?: string;
  hwaddr?: string;
  mtu?: number;
  /** Host-side interface name; the driver picks one when unset. */
  hostName?: string;
  /** Source filtering on the host side (security.mac_filtering, security.ipv4_filtering). */
  filter?: { mac?: string; ipv4?: string };
  /** Rate limits in tc units (limits.ingress: into the instance, limits.egress: out of it). */
  rates?: { ingress?: string; egress?: string };
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

/**
 * A device node inside the instance (unix-char, unix-block devices): made on the host with
 * the instance's ids and bound in at `path`, as LXD does. Its access rule is a DeviceRule.
 */
export interface DeviceNodeSpec {
  /** The device's name in the instance's config; names the node on the host. */
  device: string;
  type: "c" | "b";
  /** Absolute path inside the instance. */
  path: string;
  major: number;
  minor: number;
  /** Owner, group and mode as the instance sees them. */
  uid: number;
  gid: number;
  mode: number;
}

export interface RunConfig {
  mounts: MountSpec[];
  nics: NicSpec[];
  limits: ResourceLimits;
  deviceRules: DeviceRule[];
  deviceNodes: DeviceNodeSpec[];
  /** Forwarders between the host and the instance (proxy devices). */
  proxies: ProxySpec[];
}

export function emptyRunConfig(): RunConfig {
  return { mounts: [], nics: [], limits: {}, deviceRules: [], deviceNodes: [], proxies: [] };
}

/** Merges parts in order; later limits override earlier ones field by field. */
export function mergeRunConfigs(...parts: Partial<RunConfig>[]): RunConfig {
  const out = emptyRunConfig();
  for (const p of parts) {
    out.mounts.push(...(p.mounts ?? []));
    out.nics.push(...(p.nics ?? []));
    out.deviceRules.push(...(p.deviceRules ?? []));
    out.deviceNodes.push(...(p.deviceNodes ?? []));
    out.proxies.push(...(p.proxies ?? []));
    const l = p.limits ?? {};
    if (l.memory) out.limits.memory = { ...out.limits.memory, ...l.memory };
    if (l.cpu) out.limits.cpu = { ...out.limits.cpu, ...l.cpu };
    if (l.processes !== undefined) out.limits.processes = l.processes;
  }
  const targets = new Set<string>();
  for (const target of [...out.mounts.map((m) => m.target), ...out.deviceNodes.map((n) => n.path)]) {
    if (targets.has(target)) throw new Error(`two devices mount onto ${target}`);
    targets.add(target);
  }
  return out;
}

/** Items of one kind that a change adds and removes (a changed item is removed, then added). */
export interface Changes<T> {
  add: T[];
  remove: T[];
}

/**
 * What it takes to go from one run-config to another while the instance runs: the parts a
 * driver can apply live (mounts, device nodes, device rules, NICs, limits), and the names of the
 * other parts that changed (applied at the next start, unless the driver learns them).
 */
export interface RunConfigDiff {
  mounts: Changes<MountSpec>;
  deviceNodes: Changes<DeviceNodeSpec>;
  deviceRules: Changes<DeviceRule>;
  /** NICs by their name inside; a changed one is removed and added again (filters and rates aside). */
  nics: Changes<NicSpec>;
  /** NIC filters or rates differ: applied on the host side without touching the interfaces. */
  nicPoliciesChanged: boolean;
  limitsChanged: boolean;
  /** Proxy devices differ (the driver brings its forwarders to the new list). */
  proxiesChanged: boolean;
  /** Other run-config fields that differ (e.g. "nics"). */
  other: string[];
}

const LIVE_FIELDS = new Set(["mounts", "deviceNodes", "deviceRules", "nics", "limits", "proxies"]);

/** The difference between two run-configs; empty when they are equal. */
export function diffRunConfigs(from: RunConfig, to: RunConfig): RunConfigDiff {
  const fields = new Set([...Object.keys(from), ...Object.keys(to)]);
  return {
    mounts: changesBy(from.mounts, to.mounts, (m) => m.target),
    deviceNodes: changesBy(from.deviceNodes, to.deviceNodes, (n) => n.path),
    deviceRules: ruleChanges(from.deviceRules, to.deviceRules),
    nics: changesBy(from.nics.map(nicLink), to.nics.map(nicLink), (n) => n.name),
    nicPoliciesChanged: !sameValue(from.nics.map(nicPolicy), to.nics.map(nicPolicy)),
    limitsChanged: !sameValue(from.limits, to.limits),
    proxiesChanged: !sameValue(from.proxies, to.proxies),
    other: [...fields].filter((f) => !LIVE_FIELDS.has(f) && !sameValue(from[f as keyof RunConfig], to[f as keyof RunConfig])).sort(),
  };
}

/** Whether a diff changes nothing. */
export function isEmptyDiff(d: RunConfigDiff): boolean {
  const none = (c: Changes<unknown>) => c.add.length === 0 && c.remove.length === 0;
  return none(d.mounts) && none(d.deviceNodes) && none(d.deviceRules) && none(d.nics) && !d.limitsChanged && !d.proxiesChanged && !d.nicPoliciesChanged && d.other.length === 0;
}

/** A NIC without its host-side policy: what the interface itself is. */
function nicLink(n: NicSpec): NicSpec {
  const { filter: _f, rates: _r, ...link } = n;
  return link;
}

function nicPolicy(n: NicSpec): unknown {
  return { name: n.name, filter: n.filter, rates: n.rates };
}

function changesBy<T>(from: readonly T[], to: readonly T[], key: (t: T) => string): Changes<T> {
  const before = new Map(from.map((t) => [key(t), t]));
  const after = new Map(to.map((t) => [key(t), t]));
  const remove = from.filter((t) => !sameValue(t, after.get(key(t))));
  const add = to.filter((t) => !sameValue(t, before.get(key(t))));
  return { add, remove };
}

/** Rules compared as a multiset: one removal per rule that appears fewer times after. */
function ruleChanges(from: readonly DeviceRule[], to: readonly DeviceRule[]): Changes<DeviceRule> {
  const count = (rules: readonly DeviceRule[]) => {
    const m = new Map<string, number>();
    for (const r of rules) m.set(ruleKey(r), (m.get(ruleKey(r)) ?? 0) + 1);
    return m;
  };
  // The rules of `rules` beyond as many as `other` holds of each.
  const beyond = (rules: readonly DeviceRule[], other: Map<string, number>) => {
    const seen = new Map<string, number>();
    return rules.filter((r) => {
      const n = (seen.get(ruleKey(r)) ?? 0) + 1;
      seen.set(ruleKey(r), n);
      return n > (other.get(ruleKey(r)) ?? 0);
    });
  };
  return { add: beyond(to, count(from)), remove: beyond(from, count(to)) };
}

const ruleKey = (r: DeviceRule) => `${r.allow ? "allow" : "deny"} ${r.rule}`;

/** Deep equality of plain data, with undefined fields the same as absent ones. */
function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.keys(v)
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}
