#!/usr/bin/env node
// Start-up cost of the `lodge` CLI: runs `lodge version` and `lodge info` N times and prints the
// median and p90 wall time in ms — as users run it (dist/lodge, the launcher, paced 0.7 s apart
// so its warm spare is ready), and plain (`node dist/lodge.js`, no spare); when `lxc` is
// installed and an LXD answers, the same for `lxc version` / `lxc info` side by side. Not a
// test: numbers depend on the machine's load.
//
//   npm run build && node bench/cli-startup.mjs [N]          (N defaults to 30)
//
// Which daemon `lodge` talks to: $LODGE_DIR (default /var/lib/lodge), e.g. against a scratch one:
//   d=$(mktemp -d); node dist/lodged.js --dir $d & LODGE_DIR=$d node bench/cli-startup.mjs
// Which LXD `lxc` talks to: $LXD_SOCKET (default /var/lib/lxd/unix.socket, as lxc itself). Point
// it at lodged (LXD_SOCKET=$d/unix.socket) to compare the two clients against the same server.
// BENCH_INSTANCE=NAME adds `list` + `exec NAME -- true` run back to back, as a script does.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const lodge = join(root, "dist/lodge.js");
const launcher = join(root, "dist/lodge");
const runs = Number(process.argv[2] ?? 30);
if (!Number.isInteger(runs) || runs < 1) {
  console.error("usage: node bench/cli-startup.mjs [runs]");
  process.exit(2);
}
if (!existsSync(lodge)) {
  console.error(`${lodge} is missing: run \`npm run build\` first`);
  process.exit(2);
}

const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs cmd `runs` times (after one warm-up), pauseMs apart; returns sorted durations, or an error text. */
function time(cmd, args, env, pauseMs = 0) {
  const once = () => {
    if (pauseMs) pause(pauseMs);
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.error) return { error: r.error.message };
    if (r.status !== 0) return { error: `exit ${r.status}: ${r.stderr.toString().trim().split("\n")[0]}` };
    return { ms };
  };
  const warm = once();
  if (warm.error) return { error: warm.error };
  const all = [];
  for (let i = 0; i < runs; i++) {
    const r = once();
    if (r.error) return { error: r.error };
    all.push(r.ms);
  }
  return { all: all.sort((a, b) => a - b) };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const fmt = (r) => (r.error ? `n/a (${r.error})` : `median ${pct(r.all, 50).toFixed(1).padStart(6)}  p90 ${pct(r.all, 90).toFixed(1).padStart(6)}`);

const hasLxc = spawnSync("lxc", ["--version"], { stdio: "ignore" }).status === 0;
const lxcSocket = process.env.LXD_SOCKET || "/var/lib/lxd/unix.socket";
// A scratch LXD_CONF so the benchmark never touches (or is slowed by) the user's lxc config.
const lxcConf = mkdtempSync(join(tmpdir(), "lodge-bench-lxc-"));
const lxcEnv = { LXD_SOCKET: lxcSocket, LXD_CONF: lxcConf };
const lxdUp = hasLxc && existsSync(lxcSocket) && spawnSync("lxc", ["info"], { env: { ...process.env, ...lxcEnv }, stdio: "ignore" }).status === 0;

console.log(`runs: ${runs}   lodge: ${lodge}   LODGE_DIR=${process.env.LODGE_DIR || "/var/lib/lodge"}`);
console.log(`baseline  node -e 0        ${fmt(time(process.execPath, ["-e", "0"]))}`);
for (const verb of ["version", "info"]) {
  console.log(`lodge ${verb.padEnd(8)}          ${fmt(time(launcher, [verb], {}, 700))}`);
  console.log(`lodge ${verb.padEnd(8)} (plain)  ${fmt(time(process.execPath, [lodge, verb]))}`);
  if (lxdUp) console.log(`lxc   ${verb.padEnd(8)}          ${fmt(time("lxc", [verb], lxcEnv))}`);
}
// Commands back to back, as in a shell script: `list` then `exec INSTANCE -- true`, no pause
// between them (the spare must keep up). Needs a running instance: BENCH_INSTANCE=name, on
// lodged (and on the LXD that lxc talks to, when it is another server).
const instance = process.env.BENCH_INSTANCE;
if (instance) {
  const pair = (cmd, env) => {
    const list = time(cmd[0], [...cmd.slice(1), "list"], env);
    if (list.error) return list;
    const one = () => {
      const t0 = process.hrtime.bigint();
      for (const args of [["list"], ["exec", instance, "--", "true"]]) {
        const r = spawnSync(cmd[0], [...cmd.slice(1), ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
        if (r.status !== 0) return { error: `${args[0]}: exit ${r.status}: ${r.stderr.toString().trim().split("\n")[0]}` };
      }
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    };
    const all = [];
    for (let i = 0; i < runs; i++) {
      const r = one();
      if (r.error) return r;
      all.push(r.ms);
    }
    return { all: all.sort((x, y) => x - y) };
  };
  // Interleaved rounds, so a load change on the machine hits both alike.
  const rounds = { lodge: [], lxc: [] };
  for (let round = 0; round < 3; round++) {
    const l = pair([launcher], {});
    if (l.error) { console.log(`lodge list+exec: ${l.error}`); break; }
    rounds.lodge.push(...l.all);
    if (lxdUp) {
      const x = pair(["lxc"], lxcEnv);
      if (x.error) { console.log(`lxc list+exec: ${x.error}`); break; }
      rounds.lxc.push(...x.all);
    }
  }
  const sorted = (a) => a.sort((x, y) => x - y);
  if (rounds.lodge.length) console.log(`lodge list+exec back to back  ${fmt({ all: sorted(rounds.lodge) })}`);
  if (rounds.lxc.length) console.log(`lxc   list+exec back to back  ${fmt({ all: sorted(rounds.lxc) })}`);
}
if (!hasLxc) console.log("lxc: not installed, no comparison");
else if (!lxdUp) console.log(`lxc: no LXD answering on ${lxcSocket} (set LXD_SOCKET), no comparison`);
rmSync(lxcConf, { recursive: true, force: true });
