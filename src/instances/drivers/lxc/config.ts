/**
 * The liblxc configuration of one container, generated whole at every start from the spec
 * and the host's facts (no includes of the distribution's files, so what runs is what is
 * written here, as LXD does). Pure: the caller supplies the host facts and file kinds.
 */
import { controllerVersion, sharesToWeight, type CgroupLayout, type Controller } from "../../../sys/cgroup.js";
import { lxcIdmapLines } from "../../../sys/idmap.js";
import type { ContainerSpec } from "../../driver.js";
import type { DeviceNodeSpec, MountSpec, ResourceLimits } from "../../runconfig.js";

/**
 * How the rootfs's ownership fits the container's id map: "idmapped" (an idmapped mount at
 * start, nothing on disk changes), "shifted" (ids shifted on disk, the host cannot idmap),
 * "layered" (an overlayfs rootfs, which cannot be idmapped, stored shifted; other mounts can
 * be idmapped), or "privileged" (no map).
 */
export type RootfsOwnership = "privileged" | "idmapped" | "shifted" | "layered";

/** Whether mounts other than the rootfs can be idmapped into the container (`shift`). */
export function mountsIdmappable(ownership: RootfsOwnership): boolean {
  return ownership === "idmapped" || ownership === "layered";
}

export interface LxcHostFacts {
  cgroup: CgroupLayout;
  /** memory.memsw.* exists (cgroup v1 with swap accounting). */
  memsw: boolean;
  /** AppArmor is enabled in the kernel (liblxc then generates a profile per container). */
  apparmor: boolean;
}

export interface LxcConfigInput {
  spec: ContainerSpec;
  ownership: RootfsOwnership;
  host: LxcHostFacts;
  /** devices: the directory holding the container's device nodes (deviceNodeFile). */
  paths: { consoleLog: string; seccomp: string; devices?: string };
  /** Whether each mount source is a directory or a file (mount points are made to match). */
  sourceKinds: ReadonlyMap<string, "dir" | "file">;
}

export class LxcConfigError extends Error {
  override name = "LxcConfigError";
}

/** The default device allow-list: what a system container needs, nothing that reaches hardware. */
export const DEVICE_ALLOW: readonly string[] = [
  "c *:* m", "b *:* m", // mknod anything, use nothing unlisted
  "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", // null zero full random urandom
  "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", // tty console ptmx pts
  "c 10:229 rwm", "c 10:200 rwm", // fuse tun
];

/**
 * Syscalls refused in every container (liblxc's seccomp v2 syntax): loading kernel code and
 * the handle-based open that escapes a bind mount. errno 38 (ENOSYS) as LXD, so callers fall back.
 */
export const SECCOMP_POLICY = `2
denylist
reject_force_umount
[all]
kexec_load errno 38
open_by_handle_at errno 38
init_module errno 38
finit_module errno 38
delete_module errno 38
`;

/** Host device nodes bound in when present (optional), as LXD does. */
const OPTIONAL_DEVICES = ["/dev/fuse", "/dev/net/tun"];

/** The host file of a unix device's node, in the container's device directory. */
export function deviceNodeFile(dir: string, n: DeviceNodeSpec): string {
  return `${dir}/unix.${n.device}`;
}

/** A path inside the instance as an lxc.mount.entry target (relative, no ".."). */
function innerPath(p: string, what: string): string {
  const rel = p.replace(/^\/+/, "");
  if (!p.startsWith("/") || !rel || rel.split("/").includes("..")) throw new LxcConfigError(`${what} ${p} is not a path inside the instance`);
  return rel;
}

/** A value safe on one config line. */
function value(key: string, v: string | number): string {
  const s = String(v);
  if (/[\n\r\0]/.test(s)) throw new LxcConfigError(`${key}: a value may not contain a line break`);
  return s;
}

/** fstab fields escape blanks and backslashes as octal. */
function fstabField(s: string): string {
  return s.replace(/[\\ \t]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

function mountEntry(m: MountSpec, kind: "dir" | "file", ownership: RootfsOwnership): string {
  if (!m.source.startsWith("/") || !m.target.startsWith("/")) throw new LxcConfigError(`mount ${m.source} → ${m.target}: paths must be absolute`);
  const target = m.target.replace(/^\/+/, "");
  if (!target || target.split("/").includes("..")) throw new LxcConfigError(`mount target ${m.target} is not a path inside the instance`);
  const opts = [m.recursive ? "rbind" : "bind", `create=${kind}`];
  if (m.propagation) opts.push(m.propagation);
  if (m.readonly) opts.push("ro");
  if (m.optional) opts.push("optional");
  if (m.shift) {
    if (!mountsIdmappable(ownership)) {
      throw new LxcConfigError(`mount ${m.target}: shift needs idmapped mounts, which ${ownership === "privileged" ? "a privileged container does not use" : "this host's filesystem lacks"}`);
    }
    opts.push("idmap=container");
  }
  return `${fstabField(m.source)} ${fstabField(target)} none ${opts.join(",")} 0 0`;
}

/** `lxc.cgroup.` or `lxc.cgroup2.` for a controller, by where the host has it. */
function cgroupKey(host: LxcHostFacts, c: Controller, v1file: string, v2file: string): string | undefined {
  const v = controllerVersion(host.cgroup, c);
  if (v === 1) return `lxc.cgroup.${v1file}`;
  if (v === 2) return `lxc.cgroup2.${v2file}`;
  return undefined;
}

/** Config lines for limits; a limit whose controller the host lacks is an error, never ignored. */
export function limitLines(limits: ResourceLimits, host: LxcHostFacts): string[] {
  const out: string[] = [];
  const set = (c: Controller, v1file: string, v2file: string, v1: string | number, v2: string | number = v1) => {
    const key = cgroupKey(host, c, v1file, v2file);
    if (!key) throw new LxcConfigError(`the ${c} cgroup controller is not available on this host`);
    out.push(`${key} = ${value(key, key.startsWith("lxc.cgroup2.") ? v2 : v1)}`);
  };
  const mem = limits.memory;
  if (mem) {
    if (!Number.isSafeInteger(mem.bytes) || mem.bytes <= 0) throw new LxcConfigError(`memory limit ${mem.bytes} is not a positive byte count`);
    if (mem.enforce === "soft") {
      set("memory", "memory.soft_limit_in_bytes", "memory.high", mem.bytes);
    } else {
      set("memory", "memory.limit_in_bytes", "memory.max", mem.bytes);
      if (mem.swap === false) {
        if (controllerVersion(host.cgroup, "memory") === 2) set("memory", "", "memory.swap.max", 0);
        else if (host.memsw) set("memory", "memory.memsw.limit_in_bytes", "", mem.bytes);
      }
    }
  }
  const cpu = limits.cpu;
  if (cpu?.cpuset !== undefined) {
    if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(cpu.cpuset)) throw new LxcConfigError(`cpu set "${cpu.cpuset}" is not a list like 0-1,3`);
    set("cpuset", "cpuset.cpus", "cpuset.cpus", cpu.cpuset);
  }
  if (cpu?.shares !== undefined) set("cpu", "cpu.shares", "cpu.weight", cpu.shares, sharesToWeight(cpu.shares));
  if (cpu?.quotaUs !== undefined) {
    const period = cpu.periodUs ?? 100_000;
    const key = cgroupKey(host, "cpu", "cpu.cfs_quota_us", "cpu.max");
    if (key?.startsWith("lxc.cgroup2.")) set("cpu", "", "cpu.max", "", `${cpu.quotaUs} ${period}`);
    else {
      set("cpu", "cpu.cfs_period_us", "", period);
      set("cpu", "cpu.cfs_quota_us", "", cpu.quotaUs);
    }
  }
  if (limits.processes !== undefined) set("pids", "pids.max", "pids.max", limits.processes);
  return out;
}

/** The whole liblxc config for a container. */
export function renderLxcConfig(input: LxcConfigInput): string {
  const { spec, ownership, host, paths } = input;
  const lines: string[] = ["# Generated by lodged at each start; edits here are lost."];
  const kv = (k: string, v: string | number) => lines.push(`${k} = ${value(k, v)}`);

  kv("lxc.uts.name", spec.hostname ?? spec.name);
  kv("lxc.rootfs.path", `dir:${spec.rootfs}`);
  if (ownership === "idmapped") kv("lxc.rootfs.options", "idmap=container");
  if (ownership !== "privileged") {
    if (!spec.idmap?.length) throw new LxcConfigError(`container ${spec.name} is unprivileged but has no id map`);
    for (const l of lxcIdmapLines(spec.idmap)) kv("lxc.idmap", l);
  } else if (spec.idmap?.length) {
    throw new LxcConfigError(`container ${spec.name} is privileged and cannot have an id map`);
  }

  // Base: liblxc makes a minimal /dev; no gettys (exec and the console give shells).
  kv("lxc.autodev", 1);
  kv("lxc.pty.max", 1024);
  kv("lxc.tty.max", 0);
  kv("lxc.cap.drop", "sys_time sys_module sys_rawio mac_admin mac_override");
  kv("lxc.mount.auto", ownership === "privileged" ? "proc:mixed sys:mixed cgroup:mixed" : "proc:rw sys:rw cgroup:mixed");
  kv("lxc.console.logfile", paths.consoleLog);
  kv("lxc.seccomp.profile", paths.seccomp);
  if (host.apparmor) {
    kv("lxc.apparmor.profile", "generated");
    kv("lxc.apparmor.allow_nesting", spec.nesting ? 1 : 0);
  } else {
    kv("lxc.apparmor.profile", "unconfined");
  }
  for (const dev of OPTIONAL_DEVICES) lines.push(`lxc.mount.entry = ${dev} ${dev.slice(1)} none bind,create=file,optional 0 0`);

  const devicesKey = cgroupKey(host, "devices", "devices", "devices");
  if (devicesKey) {
    kv(`${devicesKey}.deny`, "a");
    for (const rule of DEVICE_ALLOW) kv(`${devicesKey}.allow`, rule);
    for (const r of spec.run.deviceRules) kv(`${devicesKey}.${r.allow ? "allow" : "deny"}`, r.rule);
  } else if (spec.run.deviceRules.length) {
    throw new LxcConfigError("device rules need the devices cgroup controller, which this host lacks");
  }
  lines.push(...limitLines(spec.run.limits, host));

  for (const m of spec.run.mounts) {
    const kind = input.sourceKinds.get(m.source);
    if (!kind) {
      if (m.optional) continue;
      throw new LxcConfigError(`disk source ${m.source} does not exist`);
    }
    kv("lxc.mount.entry", mountEntry(m, kind, ownership));
  }

  // Device nodes made on the host with the container's ids (drivers/lxc/devnodes.ts), bound in.
  for (const n of spec.run.deviceNodes) {
    if (!paths.devices) throw new LxcConfigError(`device ${n.device}: no directory for device nodes was given`);
    kv("lxc.mount.entry", `${fstabField(deviceNodeFile(paths.devices, n))} ${fstabField(innerPath(n.path, "device path"))} none bind,create=file 0 0`);
  }

  if (spec.run.nics.length === 0) kv("lxc.net.0.type", "empty");
  spec.run.nics.forEach((n, i) => {
    const p = `lxc.net.${i}`;
    if (n.type === "macvlan") {
      kv(`${p}.type`, "macvlan");
      kv(`${p}.macvlan.mode`, "bridge");
    } else kv(`${p}.type`, "veth");
    if (n.parent) kv(`${p}.link`, n.parent);
    kv(`${p}.name`, n.name);
    kv(`${p}.flags`, "up");
    if (n.hwaddr) kv(`${p}.hwaddr`, n.hwaddr);
    if (n.mtu) kv(`${p}.mtu`, n.mtu);
    if (n.hostName && n.type !== "macvlan") kv(`${p}.veth.pair`, n.hostName);
  });

  if (spec.rawLxc?.trim()) lines.push("# raw.lxc", spec.rawLxc.trim());
  return lines.join("\n") + "\n";
}
