/**
 * Finding a VM's QEMU from what it leaves on disk and in /proc, so a fresh lodged re-attaches to
 * VMs an earlier one started. QEMU writes its pid to the pidfile (and removes it as it exits
 * cleanly); a stale pidfile (QEMU killed, or the pid reused) is recognised by the process's
 * command line, which names that very pidfile.
 */
import { cpuTimeNs, processMemory, startTime, waitForExit as waitForProcessExit } from "../../../sys/proc.js";
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

/** Resolves when the QEMU has exited (or its pid belongs to another process). */
export function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  return waitForProcessExit(pid, timeoutMs, `QEMU (pid ${pid})`);
}

// What /proc tells of the process, for the VM's state.
export { cpuTimeNs, processMemory };
