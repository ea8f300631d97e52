/**
 * A container's state as the API shows it, read from its init's cgroups and network namespace
 * (small kernel files read at once, no process spawned).
 */
import { Cgroup } from "../../../sys/cgroup.js";
import type { InstanceState } from "../../driver.js";
import { networkState } from "./netstate.js";

const STOPPED: InstanceState = { status: "Stopped", pid: 0, processes: 0, cpu: { usage_ns: 0 }, memory: { usage: 0, usage_peak: 0, swap_usage: 0 }, network: {} };

/** The state of the container whose init is `init` (undefined or 0: not running). */
export async function containerState(init: number | undefined): Promise<InstanceState> {
  const cg = init ? await Cgroup.ofPid(init).catch(() => undefined) : undefined;
  if (!init || !cg) return structuredClone(STOPPED);
  const [frozen, processes, usage, peak, swap, cpu, network] = await Promise.all([
    cg.frozen(),
    cg.pidsCurrent(),
    cg.memoryUsage(),
    cg.memoryPeak(),
    cg.swapUsage(),
    cg.cpuUsageNs(),
    networkState(init),
  ]);
  return {
    status: frozen ? "Frozen" : "Running",
    pid: init,
    processes: processes ?? 0,
    cpu: { usage_ns: cpu ?? 0 },
    memory: { usage: usage ?? 0, usage_peak: peak ?? 0, swap_usage: swap ?? 0 },
    network,
  };
}
