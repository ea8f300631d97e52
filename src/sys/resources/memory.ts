/**
 * Memory resources: /proc/meminfo for the host, /sys/devices/system/node/nodeN/meminfo per NUMA
 * node; huge pages counted in bytes of the default huge page size.
 */
import { join } from "node:path";
import type { ResourcesMemory, ResourcesMemoryNode } from "../../api/resources.js";
import { exists, list, naturalSort, omitEmpty, text } from "./sysfs.js";

/**
 * A meminfo file as numbers: sizes ("kB") in bytes, counts (HugePages_*) as they are. Node
 * files prefix each key with "Node N "; the key is the last word before the colon.
 */
export function parseMeminfo(content: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (content ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const key = line.slice(0, i).trim().split(/\s+/).pop()!;
    const m = /^(\d+)\s*(kB)?$/.exec(line.slice(i + 1).trim());
    if (m) out.set(key, Number(m[1]) * (m[2] ? 1024 : 1));
  }
  return out;
}

export function memoryResources(root = "/"): ResourcesMemory {
  const info = parseMeminfo(text(join(root, "proc/meminfo")));
  const get = (k: string) => info.get(k) ?? 0;
  const pageSize = get("Hugepagesize");
  const total = get("MemTotal");
  const memory: ResourcesMemory = {
    nodes: [],
    hugepages_total: get("HugePages_Total") * pageSize,
    hugepages_used: Math.max(0, get("HugePages_Total") - get("HugePages_Free")) * pageSize,
    hugepages_size: pageSize,
    used: Math.max(0, total - get("MemFree") - get("Cached") - get("Buffers")),
    total,
  };

  const nodes = join(root, "sys/devices/system/node");
  for (const name of naturalSort(list(nodes))) {
    const m = /^node(\d+)$/.exec(name);
    if (!m || !exists(join(nodes, name, "meminfo"))) continue;
    const n = parseMeminfo(text(join(nodes, name, "meminfo")));
    const nget = (k: string) => n.get(k) ?? 0;
    const node: ResourcesMemoryNode = {
      numa_node: Number(m[1]),
      hugepages_used: Math.max(0, nget("HugePages_Total") - nget("HugePages_Free")) * pageSize,
      hugepages_total: nget("HugePages_Total") * pageSize,
      used: nget("MemUsed"),
      total: nget("MemTotal"),
    };
    memory.nodes!.push(node);
  }
  return omitEmpty(memory, ["nodes"]);
}
