/**
 * Finding a VM's QEMU from what it leaves on disk and in /proc, so a fresh lodged re-attaches to
 * VMs an earlier one started. QEMU writes its pid to the pidfile (and removes it as it exits
 * cleanly); a stale pidfile (QEMU killed, or the pid reused) is recognised by the process's
 * command line, which names that very pidfile.
 */
import { pollUntil } from "../../../sys/cgroup.js";
import { readSmall } from "../../../sys/small-file.js";

/** The pid of the QEMU that runs with this pidfile, or undefined when none does. */
export async function findQemu(pidfile: string): Promise<number | undefined> {
  const pid = Number((await readSmall(pidfile))?.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const argv = (await readSmall(`/proc/${pid}/cmdline`))?.split("\0") ?? [];
  const at = argv.indexOf("-pidfile");
  if (at < 0 || argv[at + 1] !== pidfile) return undefined;
  return (await startTime(pid)) === undefined ? undefined : pid;
}

/**
 * The kernel's start time of a live process (clock ticks since boot), to tell a reused pid
 * apart; undefined once it has exited. A zombie counts as exited: a daemonized QEMU's parent is
 * the host's init, which may reap it a moment later.
 */
export async function startTime(pid: number): Promise<string | undefined> {
  const stat = await readSmall(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // The command name (field 2) may hold spaces and parentheses: fields restart after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] === "Z" || fields[0] === "X" ? undefined : fields[19];
}

/** Resolves when the process has exited (or its pid belongs to another process); polls with backoff. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const started = await startTime(pid);
  if (started === undefined) return;
  await pollUntil(async () => (await startTime(pid)) !== started, timeoutMs, `QEMU (pid ${pid}) did not exit`);
}

/** CPU time of a process (user + system) in nanoseconds; 0 when it is gone. */
export async function cpuTimeNs(pid: number): Promise<number> {
  const stat = await readSmall(`/proc/${pid}/stat`);
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (12 and 13 after the name), in clock ticks (USER_HZ = 100 on Linux).
  return (Number(f[11]) + Number(f[12])) * 10_000_000;
}

/** Resident memory, its peak and swap of a process in bytes, from /proc/PID/status. */
export async function processMemory(pid: number): Promise<{ rss: number; peak: number; swap: number }> {
  const status = (await readSmall(`/proc/${pid}/status`)) ?? "";
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM"), swap: kb("VmSwap") };
}
