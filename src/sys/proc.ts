/**
 * A process as /proc shows it: whether it still runs (and is the same process: pids are
 * reused), its CPU time and its memory. The command name in /proc/PID/stat (field 2) may hold
 * spaces and parentheses, so the fields are counted from after the last ")".
 */
import { pollUntil } from "./cgroup.js";
import { readSmall } from "./small-file.js";

/** The fields of /proc/PID/stat from the state on (field 3 is [0]), or undefined when it is gone. */
async function statFields(pid: number): Promise<string[] | undefined> {
  const stat = await readSmall(`/proc/${pid}/stat`);
  return stat ? stat.slice(stat.lastIndexOf(")") + 2).split(" ") : undefined;
}

/**
 * The kernel's start time of a live process (clock ticks since boot), to tell a reused pid
 * apart; undefined once it has exited. A zombie counts as exited: a daemonized process's
 * parent is the host's init, which may reap it only a moment (or seconds) later.
 */
export async function startTime(pid: number): Promise<string | undefined> {
  const fields = await statFields(pid);
  if (!fields) return undefined;
  return fields[0] === "Z" || fields[0] === "X" ? undefined : fields[19];
}

/**
 * Resolves when the process has exited (or its pid belongs to another process); polls with
 * backoff. `what` names it in the timeout's error.
 */
export async function waitForExit(pid: number, timeoutMs: number, what = `process ${pid}`): Promise<void> {
  const started = await startTime(pid);
  if (started === undefined) return;
  await pollUntil(async () => (await startTime(pid)) !== started, timeoutMs, `${what} did not exit`);
}

/** CPU time of a process (user + system) in nanoseconds; 0 when it is gone. */
export async function cpuTimeNs(pid: number): Promise<number> {
  const f = await statFields(pid);
  if (!f) return 0;
  // utime and stime are fields 14 and 15 (12 and 13 after the name), in clock ticks (USER_HZ = 100 on Linux).
  return (Number(f[11]) + Number(f[12])) * 10_000_000;
}

/** Resident memory, its peak and swap of a process in bytes, from /proc/PID/status. */
export async function processMemory(pid: number): Promise<{ rss: number; peak: number; swap: number }> {
  const status = (await readSmall(`/proc/${pid}/status`)) ?? "";
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM"), swap: kb("VmSwap") };
}
