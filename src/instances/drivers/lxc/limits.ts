/** Limits set on a running container's cgroup (a config change applied live). */
import type { Cgroup, Controller } from "../../../sys/cgroup.js";
import type { ResourceLimits } from "../../runconfig.js";

/**
 * Each limit is set, or back to none when it is not given (an unset key applies live too). A
 * controller the host lacks is an error only for a limit that needs it.
 */
export async function setLiveLimits(cg: Cgroup, limits: ResourceLimits): Promise<void> {
  const has = (c: Controller) => cg.dir(c) !== undefined;
  const mem = limits.memory;
  if (mem || has("memory")) {
    const soft = mem?.enforce === "soft";
    await cg.setMemoryLimit(mem && !soft ? mem.bytes : undefined, { swap: mem?.swap });
    await cg.setMemoryLimit(mem && soft ? mem.bytes : undefined, { soft: true });
  }
  const cpu = limits.cpu ?? {};
  if (cpu.cpuset !== undefined) await cg.setCpuset(cpu.cpuset);
  else if (has("cpuset")) await cg.resetCpuset();
  if (cpu.shares !== undefined || has("cpu")) await cg.setCpuShares(cpu.shares);
  if (cpu.quotaUs !== undefined || has("cpu")) await cg.setCpuQuota(cpu.quotaUs, cpu.periodUs);
  if (limits.processes !== undefined || has("pids")) await cg.setPidsMax(limits.processes);
}
