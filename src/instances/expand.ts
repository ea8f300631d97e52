import { tcRate } from "../sys/nic-policy.js";
import { badRequest } from "../api/errors.js";
import { parseBool, parseSize } from "../config/keys.js";
import { parseProxyDevice } from "./devices/proxy.js";
import { nodeRule, unixDeviceNode, type HostDevices } from "./devices/unix.js";
import type { ProfileLayer } from "../profiles/record.js";
import type { InstanceRecord } from "./record.js";
import { emptyRunConfig, type CpuLimit, type MountSpec, type NicSpec, type ResourceLimits, type RunConfig } from "./runconfig.js";

/**
 * The instance's view with its profiles applied: each profile in order (a later one overrides an
 * earlier one, key by key for config, device by device for devices), then the instance's own
 * config and devices over all of them. `layers` are the instance's profiles, resolved
 * (profiles/store.ts resolve), in the order of `r.profiles`.
 */
export function expandConfig(r: Pick<InstanceRecord, "config">, layers: readonly ProfileLayer[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of layers) Object.assign(out, l.config);
  return Object.assign(out, r.config);
}

export function expandDevices(r: Pick<InstanceRecord, "devices">, layers: readonly ProfileLayer[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const l of layers) for (const [name, d] of Object.entries(l.devices)) out[name] = { ...d };
  for (const [name, d] of Object.entries(r.devices)) out[name] = { ...d };
  return out;
}

/** The root disk of an instance: the device with path "/" after expansion. */
export function rootDisk(devices: Record<string, Record<string, string>>): { name: string; pool: string } | undefined {
  for (const [name, d] of Object.entries(devices)) if (d.type === "disk" && d.path === "/" && d.pool) return { name, pool: d.pool };
  return undefined;
}

/** Device types whose run-config the container driver applies today (others are refused). */
export const APPLIED_DEVICE_TYPES: ReadonlySet<string> = new Set(["disk", "nic", "none", "unix-char", "unix-block", "proxy"]);

/** Refuses devices that validate but that no driver applies yet, rather than ignoring them. */
export function checkDevicesApplied(devices: Record<string, Record<string, string>>): void {
  for (const [name, d] of Object.entries(devices))
    if (!APPLIED_DEVICE_TYPES.has(d.type ?? ""))
      throw badRequest(`Device "${name}": ${d.type} devices are not supported yet (supported: ${[...APPLIED_DEVICE_TYPES].join(", ")})`);
}

/** Host facts a run-config depends on, looked up by the caller (runConfig stays pure). */
export interface RunConfigHost {
  /** Bytes of memory on the host (for percentages). */
  memory: number;
  /** What the host paths of unix devices are (devices/unix.ts lookupHostDevices). */
  devices?: HostDevices;
  /** Skip devices whose required source is missing instead of failing (what may already run). */
  lenient?: boolean;
  /** Host paths of custom volumes attached as disks, by "pool/volume" (devices/volumes.ts). */
  volumes?: Map<string, string>;
}

/** Turns the expanded config and devices into the declarative run-config a driver applies. */
export function runConfig(config: Record<string, string>, devices: Record<string, Record<string, string>>, host: RunConfigHost): RunConfig {
  const run = emptyRunConfig();
  run.limits = limits(config, host.memory);
  for (const [name, d] of Object.entries(devices)) {
    if (d.type === "disk" && d.path !== "/" && d.source) {
      const m = d.pool ? volumeMount(d, host) : mount(d);
      if (m) run.mounts.push(m);
    }
    if (d.type === "nic") run.nics.push(nic(name, d, config));
    if (d.type === "proxy") run.proxies.push(parseProxyDevice(name, d));
    if (d.type === "unix-char" || d.type === "unix-block") {
      const node = unixDeviceNode(name, d, host.devices ?? new Map(), host.lenient);
      if (node) {
        run.deviceNodes.push(node);
        run.deviceRules.push(nodeRule(node));
      }
    }
  }
  return run;
}

/**
 * A custom volume: always through an idmapped mount, so its files (stored with host ids 0…,
 * as instance volumes are) show with the instance's own ids, whichever instance attaches it.
 */
function volumeMount(d: Record<string, string>, host: RunConfigHost): MountSpec | undefined {
  const source = host.volumes?.get(`${d.pool}/${d.source}`);
  if (!source) {
    if (host.lenient) return undefined;
    throw new Error(`storage volume "${d.source}" not found in pool "${d.pool}"`);
  }
  return { ...mount({ ...d, source }), shift: true };
}

function mount(d: Record<string, string>): MountSpec {
  return {
    source: d.source!,
    target: d.path!,
    readonly: parseBool(d.readonly),
    optional: d.required !== undefined && !parseBool(d.required),
    shift: parseBool(d.shift),
    recursive: parseBool(d.recursive),
    propagation: (d.propagation || undefined) as MountSpec["propagation"],
  };
}

/**
 * A NIC; its MAC and host-side name come from the device, else from its volatile keys
 * (devices/nic.ts). A NIC on a managed network is a bridged one on the network's bridge, which
 * has the network's name.
 */
function nic(name: string, d: Record<string, string>, config: Record<string, string>): NicSpec {
  const spec: NicSpec = {
    name: d.name ?? name,
    type: d.network ? "bridged" : (d.nictype as NicSpec["type"]),
    parent: d.network || d.parent || undefined,
    hwaddr: d.hwaddr || config[`volatile.${name}.hwaddr`] || undefined,
    mtu: d.mtu ? Number(d.mtu) : undefined,
    hostName: d.host_name || config[`volatile.${name}.host_name`] || undefined,
  };
  const mac = parseBool(d["security.mac_filtering"]) ? spec.hwaddr : undefined;
  const ipv4 = parseBool(d["security.ipv4_filtering"]) ? d["ipv4.address"] : undefined;
  if (mac || ipv4) spec.filter = { ...(mac ? { mac } : {}), ...(ipv4 ? { ipv4 } : {}) };
  if (d["limits.ingress"] || d["limits.egress"])
    spec.rates = { ...(d["limits.ingress"] ? { ingress: tcRate(d["limits.ingress"]) } : {}), ...(d["limits.egress"] ? { egress: tcRate(d["limits.egress"]) } : {}) };
  return spec;
}

/** limits.* keys as resource limits (LXD's meanings). */
export function limits(config: Record<string, string>, hostMemory: number): ResourceLimits {
  const out: ResourceLimits = {};
  const mem = config["limits.memory"];
  if (mem) {
    const pct = /^(\d+)%$/.exec(mem);
    out.memory = {
      bytes: pct ? Math.floor((hostMemory * Number(pct[1])) / 100) : parseSize(mem),
      swap: config["limits.memory.swap"] === undefined ? true : parseBool(config["limits.memory.swap"]),
      enforce: config["limits.memory.enforce"] === "soft" ? "soft" : "hard",
    };
  }
  const cpu: CpuLimit = {};
  const count = config["limits.cpu"];
  if (count) {
    if (/^\d+$/.test(count)) {
      // A count without pinning: that many CPUs' worth of time.
      cpu.periodUs = 100_000;
      cpu.quotaUs = Number(count) * 100_000;
    } else cpu.cpuset = count;
  }
  const allowance = config["limits.cpu.allowance"];
  if (allowance) {
    const pct = /^(\d+)%$/.exec(allowance);
    const quota = /^(\d+)ms\/(\d+)ms$/.exec(allowance);
    if (pct) cpu.shares = Math.max(2, Math.round((1024 * Number(pct[1])) / 100));
    else if (quota) {
      cpu.quotaUs = Number(quota[1]) * 1000;
      cpu.periodUs = Number(quota[2]) * 1000;
    }
  }
  if (Object.keys(cpu).length > 0) out.cpu = cpu;
  if (config["limits.processes"]) out.processes = Number(config["limits.processes"]);
  return out;
}
