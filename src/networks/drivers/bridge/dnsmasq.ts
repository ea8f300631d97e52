/**
 * One network's dnsmasq process: started, found, told to re-read its hosts, stopped.
 *
 * dnsmasq daemonizes itself (no --keep-in-foreground): it forks into a session of its own,
 * points its stdio at /dev/null, writes its pid file, and only then does the process we started
 * exit, with a non-zero status and the reason on stderr when it could not start (an address in
 * use, a bad raw.dnsmasq line). So a start is synchronous and reports its errors, and the
 * daemon that remains is no child of lodged: it outlives lodged, even a SIGKILL of it, as
 * instances do, and lodged finds it again by its pid file.
 *
 * A pid file alone proves nothing (the pid may be reused after a host restart), so a pid is
 * taken as ours only when /proc/<pid>/cmdline is dnsmasq's with our own --conf-file argument.
 * A zombie has an empty cmdline, and counts as gone.
 */
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { run } from "../../../sys/exec.js";
import { startTime } from "../../../sys/proc.js";
import { readSmall } from "../../../sys/small-file.js";
import type { DnsmasqIdentity } from "./dnsmasq-config.js";
import type { NetworkFiles } from "./names.js";

export const DNSMASQ = "/usr/sbin/dnsmasq";
const START_TIMEOUT_MS = 15_000;
const STOP_WAIT_MS = 5_000;

const confArg = (files: NetworkFiles) => `--conf-file=${files.conf}`;

/** The pid of the network's running dnsmasq, or undefined when none of ours runs. */
export async function dnsmasqPid(files: NetworkFiles): Promise<number | undefined> {
  const pid = await pidFromFile(files);
  return pid !== undefined && (await isOurs(pid, files)) ? pid : undefined;
}

async function pidFromFile(files: NetworkFiles): Promise<number | undefined> {
  const pid = Number((await readSmall(files.pid))?.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

async function isOurs(pid: number, files: NetworkFiles): Promise<boolean> {
  const cmdline = await readSmall(`/proc/${pid}/cmdline`);
  if (!cmdline) return false;
  const argv = cmdline.split("\0");
  return /(^|\/)dnsmasq$/.test(argv[0] ?? "") && argv.includes(confArg(files));
}

/** Starts dnsmasq on the conf file already written; resolves once it serves, with its pid. */
export async function startDnsmasq(files: NetworkFiles, signal?: AbortSignal): Promise<number> {
  await rm(files.pid, { force: true });
  const r = await run(DNSMASQ, [confArg(files)], { signal, timeoutMs: START_TIMEOUT_MS, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, allowFail: true });
  if (r.code !== 0) {
    const why = (r.stderr || r.stdout).trim().replace(/^dnsmasq: /, "") || `exit status ${r.code}`;
    throw new Error(`dnsmasq for network "${path.basename(files.dir)}" did not start: ${why}`);
  }
  const pid = await dnsmasqPid(files);
  if (pid === undefined) throw new Error(`dnsmasq started but its pid file ${files.pid} names no dnsmasq of this network`);
  return pid;
}

/** SIGTERM, then SIGKILL after a while; resolves once it is gone. Quiet when none runs. */
export async function stopDnsmasq(files: NetworkFiles): Promise<void> {
  const pid = await pidFromFile(files);
  if (pid !== undefined && (await isOurs(pid, files))) {
    signalPid(pid, "SIGTERM");
    if (!(await gone(pid, STOP_WAIT_MS))) {
      signalPid(pid, "SIGKILL");
      if (!(await gone(pid, STOP_WAIT_MS))) throw new Error(`dnsmasq (pid ${pid}) did not exit after SIGKILL`);
    }
  } else if (pid !== undefined && (await readSmall(`/proc/${pid}/comm`))?.trim() === "dnsmasq") {
    // Killed and on its way out (its cmdline already gone, its sockets maybe not): waited for,
    // not signalled, so a new one can bind them.
    await gone(pid, STOP_WAIT_MS);
  }
  await rm(files.pid, { force: true });
}

/** Makes dnsmasq read its hosts file again (SIGHUP); false when none runs. */
export async function reloadDnsmasq(files: NetworkFiles): Promise<boolean> {
  const pid = await dnsmasqPid(files);
  if (pid === undefined) return false;
  return signalPid(pid, "SIGHUP");
}

function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls (with backoff), for at most `ms`, until `pid` has exited: no process, or a zombie. Not
 * until its cmdline reads empty: the kernel drops a process's memory (and with it the cmdline)
 * before its files, so for a moment it would still hold the sockets its successor must bind.
 */
async function gone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let delay = 2; await running(pid); delay = Math.min(delay * 2, 100)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
  return true;
}

/** Whether `pid` is a process that has not finished exiting (a zombie has). */
async function running(pid: number): Promise<boolean> {
  return (await startTime(pid)) !== undefined;
}

/**
 * Who dnsmasq runs as once it has bound its sockets: nobody, in the group Debian calls nogroup
 * (other systems call it nobody).
 */
export async function dnsmasqIdentity(): Promise<DnsmasqIdentity> {
  const groups = await readFile("/etc/group", "utf8").catch(() => "");
  return { user: "nobody", group: /^nogroup:/m.test(groups) ? "nogroup" : "nobody" };
}
