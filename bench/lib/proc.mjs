// What /proc says about processes: memory (PSS/RSS from smaps_rollup), pid namespaces,
// parentage, and which process listens on a unix socket. Linux only; run as root to see all.
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

/** All numeric pids currently in /proc. */
export function pids() {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
}

function read(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** { pss, rss } in KiB from /proc/PID/smaps_rollup (zeros if the process is gone). */
export function memoryOf(pid) {
  const text = read(`/proc/${pid}/smaps_rollup`);
  if (!text) return { pss: 0, rss: 0 };
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { pss: field("Pss"), rss: field("Rss") };
}

/** Sum of memoryOf over pids. */
export function memoryOfAll(list) {
  let pss = 0;
  let rss = 0;
  for (const p of list) {
    const m = memoryOf(p);
    pss += m.pss;
    rss += m.rss;
  }
  return { pss, rss, processes: list.length };
}

/** The pid namespace link ("pid:[4026…]") of a process, or null. */
export function pidNs(pid) {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/** Every pid sharing the pid namespace of `pid` (the container's processes, seen from the host). */
export function pidsInNsOf(pid) {
  const ns = pidNs(pid);
  if (!ns) return [];
  return pids().filter((p) => pidNs(p) === ns);
}

/** argv of a process (empty if gone). */
export function cmdline(pid) {
  const t = read(`/proc/${pid}/cmdline`);
  return t ? t.split("\0").filter(Boolean) : [];
}

/** Map pid -> ppid for all processes. */
export function parents() {
  const m = new Map();
  for (const p of pids()) {
    const s = read(`/proc/${p}/stat`);
    if (!s) continue;
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    m.set(p, Number(rest[1]));
  }
  return m;
}

/** pid and all its descendants. */
export function tree(pid) {
  const pp = parents();
  const out = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [p, parent] of pp) {
      if (!out.has(p) && out.has(parent)) {
        out.add(p);
        grew = true;
      }
    }
  }
  return [...out];
}

/** liblxc's per-container monitor ("[lxc monitor] LXCPATH NAME") for container `name`, if any. */
export function lxcMonitorOf(name) {
  return pids().filter((p) => {
    const a = cmdline(p);
    return a.length > 0 && a[0].startsWith("[lxc monitor]") && a.join(" ").endsWith(` ${name}`);
  });
}

/** The pid of the process listening on the unix socket at `path`, or null. */
export function socketOwner(path) {
  const table = read("/proc/net/unix") ?? "";
  const inodes = new Set();
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[7] === path) inodes.add(f[6]);
  }
  if (inodes.size === 0) return null;
  for (const p of pids()) {
    let fds;
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p}/fd/${fd}`));
        if (m && inodes.has(m[1])) return p;
      } catch {
        /* fd closed meanwhile */
      }
    }
  }
  return null;
}
