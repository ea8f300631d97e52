/**
 * CPU resources: sockets, cores and threads from /sys/devices/system/cpu/cpuN/topology, names
 * from /proc/cpuinfo, caches and frequencies from sysfs (LXD's GetCPU, read the same way).
 */
import { machine } from "node:os";
import { join } from "node:path";
import type { ResourcesCPU, ResourcesCPUCache, ResourcesCPUCore, ResourcesCPUSocket } from "../../api/resources.js";
import { exists, int, list, naturalSort, numaNodeOf, omitEmpty, parseCpuset, text } from "./sysfs.js";

/** /proc/cpuinfo as one key/value map per "processor" block, keyed by processor number. */
export function parseCpuinfo(content: string | undefined): Map<number, Map<string, string>> {
  const out = new Map<number, Map<string, string>>();
  if (!content) return out;
  for (const block of content.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split("\n")) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      fields.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
    }
    const p = fields.get("processor");
    if (p !== undefined && /^\d+$/.test(p)) out.set(Number(p), fields);
  }
  return out;
}

function caches(dir: string): ResourcesCPUCache[] {
  const out: ResourcesCPUCache[] = [];
  for (const name of naturalSort(list(dir))) {
    const level = int(join(dir, name, "level"));
    if (level === undefined) continue;
    // Sizes are in KiB with a "K" suffix (some architectures give plain bytes).
    const raw = text(join(dir, name, "size"));
    const m = raw ? /^(\d+)([KMG]?)$/.exec(raw) : null;
    const size = m ? Number(m[1]) * ({ "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2]!]! : 0;
    out.push({ level, type: text(join(dir, name, "type")) ?? "Unknown", size });
  }
  return out;
}

/** kHz in a cpufreq file, as MHz; the first file present wins. */
function mhz(dir: string, ...files: string[]): number {
  for (const f of files) {
    const v = int(join(dir, "cpufreq", f));
    if (v !== undefined && v >= 0) return Math.floor(v / 1000);
  }
  return 0;
}

export function cpuResources(root = "/"): ResourcesCPU {
  const base = join(root, "sys/devices/system/cpu");
  const isolated = new Set(parseCpuset(text(join(base, "isolated"))));
  const cpuinfo = parseCpuinfo(text(join(root, "proc/cpuinfo")));
  const sockets = new Map<number, { socket: ResourcesCPUSocket; cores: Map<string, ResourcesCPUCore> }>();
  let total = 0;

  for (const name of naturalSort(list(base))) {
    const m = /^cpu(\d+)$/.exec(name);
    const dir = join(base, name);
    // Offline threads lose their topology directory; they are not counted (as in LXD).
    if (!m || !exists(join(dir, "topology"))) continue;
    const id = Number(m[1]);
    const topo = (f: string) => Math.max(0, int(join(dir, "topology", f)) ?? 0);
    const socketId = topo("physical_package_id");
    const coreId = topo("core_id");
    const dieId = topo("die_id");

    let s = sockets.get(socketId);
    if (!s) {
      // Names come from this socket's first thread in /proc/cpuinfo ("cpu" on POWER).
      const info = cpuinfo.get(id);
      const socket: ResourcesCPUSocket = {
        name: info?.get("model name") ?? info?.get("cpu") ?? "",
        vendor: info?.get("vendor_id") ?? "",
        socket: socketId,
        cache: caches(join(dir, "cache")),
        cores: [],
        frequency: 0,
        frequency_minimum: mhz(dir, "cpuinfo_min_freq", "scaling_min_freq"),
        frequency_turbo: mhz(dir, "cpuinfo_max_freq", "scaling_max_freq"),
      };
      s = { socket, cores: new Map() };
      sockets.set(socketId, s);
    }

    const coreKey = `${dieId}_${coreId}`;
    let core = s.cores.get(coreKey);
    if (!core) {
      core = { core: coreId, die: dieId, threads: [], frequency: mhz(dir, "scaling_cur_freq") };
      s.cores.set(coreKey, core);
    }
    core.threads.push({
      id,
      numa_node: numaNodeOf(dir),
      thread: core.threads.length,
      online: int(join(dir, "online")) !== 0,
      isolated: isolated.has(id),
    });
    total++;
  }

  const out: ResourcesCPUSocket[] = [];
  for (const { socket, cores } of [...sockets.values()].sort((a, b) => a.socket.socket - b.socket.socket)) {
    socket.cores = [...cores.values()].sort((a, b) => a.die - b.die || a.core - b.core);
    const freqs = socket.cores.map((c) => c.frequency ?? 0).filter((f) => f > 0);
    socket.frequency = freqs.length ? Math.floor(freqs.reduce((a, b) => a + b, 0) / freqs.length) : 0;
    for (const c of socket.cores) omitEmpty(c, ["frequency"]);
    out.push(omitEmpty(socket, ["name", "vendor", "cache", "frequency", "frequency_minimum", "frequency_turbo"]));
  }
  return { architecture: machine(), sockets: out, total };
}
