import { validateConfig, parseSize, type KeyTable } from "../../config/keys.js";
import { parseSchedule } from "../snapshots/cron.js";
import { expiryFrom, nextSnapshotName } from "../snapshots/naming.js";

/**
 * Instance config keys Lodge implements, with LXD's names and meanings. A key is listed here
 * only together with the code that honours it; anything else is refused by name.
 */
export const INSTANCE_KEYS: KeyTable = {
  "boot.autostart": { type: "bool", live: true, description: "Start the instance when lodged starts" },
  "boot.autostart.delay": { type: "int", live: true, description: "Seconds to wait after starting it", validate: nonNegative },
  "boot.autostart.priority": { type: "int", live: true, description: "Higher starts first" },
  "boot.host_shutdown_timeout": {
    type: "int",
    default: "30",
    live: true,
    description: "Seconds to wait for a clean stop when the host shuts down",
    validate: nonNegative,
  },
  "boot.stop.priority": { type: "int", live: true, description: "Higher stops first" },
  "limits.cpu": { type: "string", live: true, description: "CPU count (\"2\") or pinning (\"0-1,3\")", validate: cpuSet },
  "limits.cpu.allowance": {
    type: "string",
    live: true,
    description: 'CPU time share ("50%") or hard quota ("25ms/100ms")',
    validate: cpuAllowance,
  },
  "limits.memory": { type: "string", live: true, description: 'Memory limit ("512MiB" or "50%")', validate: memory },
  "limits.memory.enforce": {
    type: "string",
    default: "hard",
    live: true,
    description: "hard or soft",
    validate: oneOf("hard", "soft"),
  },
  "limits.memory.swap": { type: "bool", default: "true", live: true, description: "Whether the instance may swap" },
  "limits.processes": { type: "int", live: true, description: "Maximum number of processes", validate: positive },
  "raw.lxc": { type: "string", description: "Extra liblxc config lines (checked)" },
  "security.idmap.base": { type: "int", description: "Host id the isolated map starts at", validate: nonNegative },
  "security.idmap.isolated": { type: "bool", description: "Give the instance an id range of its own" },
  "security.idmap.size": { type: "int", description: "Size of the instance's id range", validate: positive },
  "security.nesting": { type: "bool", live: true, description: "Allow containers inside the container" },
  "security.privileged": { type: "bool", description: "Run without a user namespace (root is host root)" },
  "security.secureboot": { type: "bool", default: "true", description: "VMs: UEFI secure boot (images that boot through UEFI)" },
  "cloud-init.user-data": { type: "string", description: "VMs and containers: cloud-init user-data" },
  "cloud-init.vendor-data": { type: "string", description: "VMs and containers: cloud-init vendor-data" },
  "cloud-init.network-config": { type: "string", description: "VMs and containers: cloud-init network-config" },
  "security.protection.delete": { type: "bool", live: true, description: "Refuse to delete the instance" },
  "snapshots.schedule": {
    type: "string",
    live: true,
    description: 'When to take snapshots: cron ("0 6 * * *") or @hourly, @daily, @weekly, @monthly, @yearly',
    validate: (v) => void parseSchedule(v),
  },
  "snapshots.schedule.stopped": { type: "bool", default: "false", live: true, description: "Take scheduled snapshots of a stopped instance too" },
  "snapshots.pattern": {
    type: "string",
    default: "snap%d",
    live: true,
    description: "Name of new snapshots (%d, {{ creation_date|date:'2006-01-02_15-04-05' }})",
    validate: (v) => void nextSnapshotName(v, []),
  },
  "snapshots.expiry": { type: "string", live: true, description: 'Lifetime of new snapshots ("1M 2H 3d 4w 5m 6y")', validate: (v) => void expiryFrom(v) },
};

/** Free-form namespaces, as LXD: user data, environment, image properties, volatile state. */
export const FREE_PREFIXES = ["user.", "environment.", "image."] as const;

/** Validates an instance's config; `volatile.*` is Lodge's own bookkeeping and passes through. */
export function validateInstanceConfig(config: Record<string, unknown>): Record<string, string> {
  return validateConfig(INSTANCE_KEYS, config, [...FREE_PREFIXES, "volatile."], "instance");
}

function nonNegative(v: string): void {
  if (Number(v) < 0) throw new Error("must be zero or more");
}
function positive(v: string): void {
  if (Number(v) <= 0) throw new Error("must be greater than zero");
}
function oneOf(...allowed: string[]) {
  return (v: string) => {
    if (!allowed.includes(v)) throw new Error(`"${v}" is not one of ${allowed.join(", ")}`);
  };
}

function cpuSet(v: string): void {
  if (/^\d+$/.test(v)) {
    if (Number(v) < 1) throw new Error("CPU count must be at least 1");
    return;
  }
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) throw new Error(`"${v}" is neither a CPU count nor a CPU list like 0-1,3`);
  for (const part of v.split(",")) {
    const [a, b] = part.split("-").map(Number);
    if (b !== undefined && b < a!) throw new Error(`range "${part}" runs backwards`);
  }
}

function cpuAllowance(v: string): void {
  const pct = /^(\d+)%$/.exec(v);
  if (pct) {
    if (Number(pct[1]) < 1 || Number(pct[1]) > 100) throw new Error("percentage must be between 1% and 100%");
    return;
  }
  const quota = /^(\d+)ms\/(\d+)ms$/.exec(v);
  if (!quota) throw new Error(`"${v}" is neither a percentage ("50%") nor a quota ("25ms/100ms")`);
  if (Number(quota[1]) < 1 || Number(quota[2]) < 1) throw new Error("quota and period must be at least 1ms");
}

function memory(v: string): void {
  const pct = /^(\d+)%$/.exec(v);
  if (pct) {
    if (Number(pct[1]) < 1 || Number(pct[1]) > 100) throw new Error("percentage must be between 1% and 100%");
    return;
  }
  if (parseSize(v) < 4 * 1024 * 1024) throw new Error("must be at least 4MiB");
}
