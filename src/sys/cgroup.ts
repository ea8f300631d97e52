/**
 * A process's cgroup on either layout: cgroup v1 (one hierarchy per controller), cgroup v2
 * (one unified hierarchy), or the hybrid of both (v1 controllers plus an empty cgroup2 mount,
 * as on the development hosts). Each controller is used where the host has it: a v1 mount if
 * there is one, else the unified hierarchy when it offers the controller.
 *
 * Reads and writes are plain file operations on /sys/fs/cgroup; nothing is spawned, so state
 * of many instances can be read in parallel.
 */
import { readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { readSmall } from "./small-file.js";

export type Controller = "memory" | "cpu" | "cpuacct" | "cpuset" | "pids" | "freezer" | "devices" | "blkio";

export interface CgroupLayout {
  /** Mount point of each v1 controller (a hierarchy may carry several, e.g. cpu,cpuacct). */
  v1: Partial<Record<string, string>>;
  /** Mount point of the unified (cgroup2) hierarchy, if mounted. */
  unified?: string;
  /** Controllers the unified hierarchy offers at its root. */
  unifiedControllers: string[];
}

/** Parses /proc/self/mountinfo-style /proc/mounts text into the cgroup layout (controllers filled in later). */
export function parseCgroupMounts(mounts: string): Omit<CgroupLayout, "unifiedControllers"> {
  const v1: Record<string, string> = {};
  let unified: string | undefined;
  for (const line of mounts.split("\n")) {
    const [, dir, type, opts] = line.split(" ");
    if (!dir || !opts) continue;
    if (type === "cgroup2") unified ??= dir;
    if (type !== "cgroup") continue;
    for (const o of opts.split(",")) {
      if (o.startsWith("name=")) v1[o] = dir;
      else if (!["rw", "ro", "relatime", "nosuid", "nodev", "noexec", "clone_children"].includes(o) && !o.includes("=")) v1[o] = dir;
    }
  }
  return { v1, unified };
}

let layoutCache: Promise<CgroupLayout> | undefined;

/** The host's cgroup layout, read once per process. */
export function cgroupLayout(): Promise<CgroupLayout> {
  return (layoutCache ??= (async () => {
    const base = parseCgroupMounts(await readFile("/proc/self/mounts", "utf8"));
    const unifiedControllers = base.unified
      ? (await readFile(path.join(base.unified, "cgroup.controllers"), "utf8").catch(() => "")).trim().split(/\s+/).filter(Boolean)
      : [];
    return { ...base, unifiedControllers };
  })());
}

/**
 * Removes the named top-level cgroups (with their child cgroups) from every hierarchy, where
 * they exist and are empty: rmdir refuses a cgroup that still has tasks, so nothing running
 * is touched. Returns the cgroups that could not be removed.
 */
export async function removeCgroups(layout: CgroupLayout, names: readonly string[]): Promise<string[]> {
  const roots = [...new Set([...Object.values(layout.v1), layout.unified].filter((d): d is string => !!d))];
  const failed: string[] = [];
  const remove = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
    if (!entries) return; // already gone
    for (const e of entries) if (e.isDirectory()) await remove(path.join(dir, e.name));
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") failed.push(dir);
    });
  };
  await Promise.all(roots.flatMap((r) => names.map((n) => remove(path.join(r, n)))));
  return failed;
}

/** Where a controller lives on this host: v1, v2 (unified) or nowhere. */
export function controllerVersion(layout: CgroupLayout, c: Controller): 1 | 2 | undefined {
  if (layout.v1[c]) return 1;
  // cgroup2 has no cpuacct, freezer or devices controllers: cpu.stat and cgroup.freeze are
  // core files, and device access is an eBPF program (which liblxc attaches).
  if (layout.unified && (layout.unifiedControllers.includes(c) || ["cpuacct", "freezer", "devices"].includes(c))) return 2;
  return undefined;
}

/** /proc/<pid>/cgroup: hierarchy "0" is the unified one; the others are keyed by each controller. */
export function parseProcCgroup(text: string): { v1: Record<string, string>; unified?: string } {
  const v1: Record<string, string> = {};
  let unified: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") unified = m[3]!;
    else for (const c of m[2]!.split(",")) if (c) v1[c] = m[3]!;
  }
  return { v1, unified };
}

export class CgroupError extends Error {
  override name = "CgroupError";
}

/** A cgroup (one directory per hierarchy) with typed reads and limit writes. */
export class Cgroup {
  constructor(
    readonly layout: CgroupLayout,
    /** Path of the cgroup inside each v1 hierarchy, by controller, and inside the unified one. */
    readonly rel: { v1: Record<string, string>; unified?: string },
  ) {}

  /** The cgroup of a running process. */
  static async ofPid(pid: number): Promise<Cgroup> {
    const [layout, text] = await Promise.all([cgroupLayout(), readSmall(`/proc/${pid}/cgroup`)]);
    if (text === undefined) throw new CgroupError(`process ${pid} is gone`);
    return new Cgroup(layout, parseProcCgroup(text));
  }

  /** Directory and layout version for a controller, or undefined when the host lacks it. */
  dir(c: Controller): { dir: string; version: 1 | 2 } | undefined {
    const v = controllerVersion(this.layout, c);
    if (v === 1) {
      const rel = this.rel.v1[c];
      return rel === undefined ? undefined : { dir: path.join(this.layout.v1[c]!, rel), version: 1 };
    }
    if (v === 2 && this.layout.unified && this.rel.unified !== undefined) {
      return { dir: path.join(this.layout.unified, this.rel.unified), version: 2 };
    }
    return undefined;
  }

  private async read(c: Controller, v1file: string, v2file: string): Promise<{ text: string; version: 1 | 2 } | undefined> {
    const d = this.dir(c);
    if (!d) return undefined;
    const text = await readSmall(path.join(d.dir, d.version === 1 ? v1file : v2file));
    return text === undefined ? undefined : { text: text.trim(), version: d.version };
  }

  private async write(c: Controller, file: { v1: string; v2: string }, value: { v1: string; v2: string }): Promise<void> {
    const d = this.dir(c);
    if (!d) throw new CgroupError(`the ${c} cgroup controller is not available on this host`);
    await writeFile(path.join(d.dir, d.version === 1 ? file.v1 : file.v2), d.version === 1 ? value.v1 : value.v2);
  }

  /** Memory in use, bytes (page cache included, as the kernel charges it). */
  async memoryUsage(): Promise<number | undefined> {
    const r = await this.read("memory", "memory.usage_in_bytes", "memory.current");
    return r ? num(r.text) : undefined;
  }

  /** The most memory ever used, bytes (v2 needs kernel 5.19+ for memory.peak). */
  async memoryPeak(): Promise<number | undefined> {
    const r = await this.read("memory", "memory.max_usage_in_bytes", "memory.peak");
    return r ? num(r.text) : undefined;
  }

  /** Swap in use, bytes. */
  async swapUsage(): Promise<number | undefined> {
    const d = this.dir("memory");
    if (!d) return undefined;
    if (d.version === 2) return num((await readSmall(path.join(d.dir, "memory.swap.current"))) ?? "");
    const [memsw, mem] = await Promise.all([readSmall(path.join(d.dir, "memory.memsw.usage_in_bytes")), readSmall(path.join(d.dir, "memory.usage_in_bytes"))]).then((r) => r.map((t) => t ?? ""));
    const a = num(memsw);
    const b = num(mem);
    return a === undefined || b === undefined ? undefined : Math.max(0, a - b);
  }

  /** Times the OOM killer fired in this cgroup. */
  async oomKills(): Promise<number | undefined> {
    const r = await this.read("memory", "memory.oom_control", "memory.events");
    const m = r && /^oom_kill (\d+)$/m.exec(r.text);
    return m ? Number(m[1]) : undefined;
  }

  /** CPU time used, nanoseconds. */
  async cpuUsageNs(): Promise<number | undefined> {
    const r = await this.read("cpuacct", "cpuacct.usage", "cpu.stat");
    if (!r) return undefined;
    if (r.version === 1) return num(r.text);
    const m = /^usage_usec (\d+)$/m.exec(r.text);
    return m ? Number(m[1]) * 1000 : undefined;
  }

  /** Tasks (processes and threads) in the cgroup. */
  async pidsCurrent(): Promise<number | undefined> {
    const r = await this.read("pids", "pids.current", "pids.current");
    return r ? num(r.text) : undefined;
  }

  async frozen(): Promise<boolean> {
    const r = await this.read("freezer", "freezer.state", "cgroup.freeze");
    if (!r) return false;
    return r.version === 1 ? r.text === "FROZEN" : r.text === "1";
  }

  /** Freezes or thaws every task and waits until the kernel says it is done (no fixed sleep). */
  async setFrozen(frozen: boolean, timeoutMs = 10_000): Promise<void> {
    const d = this.dir("freezer");
    if (!d) throw new CgroupError("the freezer cgroup controller is not available on this host");
    if (d.version === 1) await writeFile(path.join(d.dir, "freezer.state"), frozen ? "FROZEN" : "THAWED");
    else await writeFile(path.join(d.dir, "cgroup.freeze"), frozen ? "1" : "0");
    const done = async () => {
      if (d.version === 1) return (await readFile(path.join(d.dir, "freezer.state"), "utf8")).trim() === (frozen ? "FROZEN" : "THAWED");
      return /^frozen (\d)$/m.exec(await readFile(path.join(d.dir, "cgroup.events"), "utf8"))?.[1] === (frozen ? "1" : "0");
    };
    await pollUntil(done, timeoutMs, `cgroup did not become ${frozen ? "frozen" : "thawed"}`);
  }

  /** Hard memory limit (undefined: none); swap=false also caps memory+swap at the same value. */
  async setMemoryLimit(bytes: number | undefined, opts: { swap?: boolean; soft?: boolean } = {}): Promise<void> {
    const v = bytes === undefined ? { v1: "-1", v2: "max" } : { v1: String(bytes), v2: String(bytes) };
    const d = this.dir("memory");
    if (opts.soft) return this.write("memory", { v1: "memory.soft_limit_in_bytes", v2: "memory.high" }, v);
    if (d?.version === 1) {
      // memsw must stay >= the memory limit: order the writes so neither is ever below the other.
      const memsw = path.join(d.dir, "memory.memsw.limit_in_bytes");
      const hasMemsw = await readFile(memsw, "utf8").then(() => true, () => false);
      const swapLimit = opts.swap === false ? v.v1 : "-1";
      if (hasMemsw) await writeFile(memsw, "-1");
      await writeFile(path.join(d.dir, "memory.limit_in_bytes"), v.v1);
      if (hasMemsw && swapLimit !== "-1") await writeFile(memsw, swapLimit);
      return;
    }
    await this.write("memory", { v1: "memory.limit_in_bytes", v2: "memory.max" }, v);
    if (d?.version === 2) await writeFile(path.join(d.dir, "memory.swap.max"), opts.swap === false ? "0" : "max").catch(() => undefined);
  }

  /** Relative CPU weight in v1 shares (2-262144, default 1024); v2 gets the matching weight. */
  async setCpuShares(shares: number | undefined): Promise<void> {
    const v = shares === undefined ? { v1: "1024", v2: "100" } : { v1: String(shares), v2: String(sharesToWeight(shares)) };
    await this.write("cpu", { v1: "cpu.shares", v2: "cpu.weight" }, v);
  }

  /** CPU bandwidth: quotaUs per periodUs (undefined quota: unlimited). */
  async setCpuQuota(quotaUs: number | undefined, periodUs = 100_000): Promise<void> {
    const d = this.dir("cpu");
    if (!d) throw new CgroupError("the cpu cgroup controller is not available on this host");
    if (d.version === 2) return writeFile(path.join(d.dir, "cpu.max"), `${quotaUs ?? "max"} ${periodUs}`);
    await writeFile(path.join(d.dir, "cpu.cfs_period_us"), String(periodUs));
    await writeFile(path.join(d.dir, "cpu.cfs_quota_us"), String(quotaUs ?? -1));
  }

  /** CPUs the tasks may run on, e.g. "0-1" or "0,2". */
  async setCpuset(cpus: string): Promise<void> {
    await this.write("cpuset", { v1: "cpuset.cpus", v2: "cpuset.cpus" }, { v1: cpus, v2: cpus });
  }

  /** CPUs back to all its parent cgroup has. */
  async resetCpuset(): Promise<void> {
    const d = this.dir("cpuset");
    if (!d) throw new CgroupError("the cpuset cgroup controller is not available on this host");
    if (d.version === 2) return writeFile(path.join(d.dir, "cpuset.cpus"), "");
    const cpus = await readFile(path.join(path.dirname(d.dir), "cpuset.cpus"), "utf8");
    await writeFile(path.join(d.dir, "cpuset.cpus"), cpus.trim());
  }

  /** Most tasks allowed (undefined: no limit). */
  async setPidsMax(max: number | undefined): Promise<void> {
    const v = max === undefined ? "max" : String(max);
    await this.write("pids", { v1: "pids.max", v2: "pids.max" }, { v1: v, v2: v });
  }
}

/** cgroup v1 cpu.shares → cgroup v2 cpu.weight, the kernel's and systemd's conversion. */
export function sharesToWeight(shares: number): number {
  const s = Math.min(262144, Math.max(2, Math.round(shares)));
  return 1 + Math.floor(((s - 2) * 9999) / 262142);
}

function num(text: string): number | undefined {
  const n = Number(text.trim());
  return text.trim() !== "" && Number.isFinite(n) ? n : undefined;
}

/** Polls `done` with exponential backoff (1 ms doubling to 50 ms) until true or the timeout. */
export async function pollUntil(done: () => Promise<boolean> | boolean, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (await done()) return;
    if (Date.now() >= deadline) throw new CgroupError(`${message} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
}
