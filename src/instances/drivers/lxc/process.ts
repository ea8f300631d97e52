/**
 * Finding a container's processes from what liblxc leaves on disk and in /proc, so a fresh
 * daemon re-attaches to containers started by an earlier one. `lxc-start -d -p PIDFILE`
 * writes the pid of the monitor ("[lxc monitor] LXCPATH NAME"), which outlives the daemon;
 * the container's init is the monitor's child. liblxc removes the pidfile when the monitor
 * exits; a stale one (monitor killed) is recognised by the pid's command line.
 */
import { readSmall } from "../../../sys/small-file.js";

export interface ContainerProcesses {
  monitor: number;
  /** The container's init (host pid), undefined while starting or after it died. */
  init?: number;
}

/** The monitor and init of a container, or undefined when no monitor runs for it. */
export async function findProcesses(pidfile: string, lxcpath: string, name: string): Promise<ContainerProcesses | undefined> {
  const text = await readSmall(pidfile);
  const monitor = Number(text?.trim());
  if (!text || !Number.isSafeInteger(monitor) || monitor <= 0) return undefined;
  const [cmdline, children] = await Promise.all([
    readSmall(`/proc/${monitor}/cmdline`),
    readSmall(`/proc/${monitor}/task/${monitor}/children`),
  ]);
  if (cmdline?.replace(/\0+$/, "").replace(/\0/g, " ") !== `[lxc monitor] ${lxcpath} ${name}`) return undefined;
  const init = (children ?? "").trim().split(/\s+/).map(Number).find((p) => Number.isSafeInteger(p) && p > 0);
  return { monitor, init };
}

// The network counters live with the rest of the network state.
export { parseNetDev } from "./netstate.js";
