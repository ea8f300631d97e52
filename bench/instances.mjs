#!/usr/bin/env node
// Lodge vs LXD, side by side, through the same real `lxc` client: container hot paths on a
// busybox image, both servers without a NIC. Not a test: the numbers depend on the machine and
// its load (the load average is printed with them). Needs root, liblxc, the `lxc` client
// (Debian's lxd-client) and, for the LXD side, Debian's `lxd` package (apt-get install -y lxd).
//
//   node bench/instances.mjs [options]
//
//   --runs N           runs per timed operation (default 10)
//   --list-runs N      list calls timed per server at 100 instances (default: --runs)
//   --instances N      instances for the list part (default 100; 0 skips it)
//   --parallel N       launches in the parallel part (default 10)
//   --memory N         running containers for the memory part (default 10; 0 skips it)
//   --lodge-dir DIR    use the lodged already serving DIR/unix.socket (default: start one on a
//                      temporary directory, building dist/ with `npm run build` if missing)
//   --lxd-socket PATH  use the LXD at PATH (default /var/lib/lxd/unix.socket; when nothing answers
//                      there and `lxd` is installed, the bench starts LXD itself, initialises it
//                      with a `dir` pool and no network if it has no pool, and stops it at the end)
//   --no-lxd           Lodge alone
//   --only LIST        comma-separated parts: single,api,parallel,memory,list (default: all)
//   --json             print the results as JSON on stdout (progress always goes to stderr)
//   --report FILE      print the table of a JSON result saved earlier, run nothing
//
// What it does: builds images/busybox.yaml with `lodge image build`, imports the same file into
// both servers (reused when the fingerprint is already there), runs one untimed warm-up launch
// per server, then, interleaving the servers run by run:
//   single    launch → first successful `lxc exec X -- true`; `exec -- true` (3 per run); clean
//             `lxc stop`; `lxc start` → exec-able; `lxc stop --force`; `lxc delete --force` of a
//             running container
//   api       the same steps straight on the REST API, without the lxc client and without
//             websockets, to split client and daemon time: POST /1.0/instances (create, waited),
//             PUT state start, POST exec `true` (wait-for-websocket false, record-output false;
//             waited with GET /1.0/operations/ID/wait), PUT state stop force, DELETE (stopped)
//   parallel  N `lxc launch` at once, wall time until every one has answered an exec
//   memory    N running containers: PSS and RSS (/proc/PID/smaps_rollup) of each container's
//             processes (everything in its pid namespace plus its liblxc monitor, "[lxc monitor]
//             PATH NAME"), and the growth of the daemon's process tree (daemon + descendants, minus
//             container processes) divided by N; also `lxc list` (and `lodge list`) with N running
//   list      N stopped instances (`lxc init`, 10 at a time): `lxc list`, GET
//             /1.0/instances?recursion=1 (over the socket, to the last byte), and `lodge list`
//             against lodged next to `lxc list` against lodged
// Medians and p90 (linear interpolation) per metric, the Lodge/LXD ratio and issue 9's targets.
//
// Everything it creates is named lb<pid>-… and removed at the end, also on failure or Ctrl-C
// (a second Ctrl-C gives up cleaning): instances (found by prefix through the API, so that
// launches still in flight are caught), the images and profile it imported or created, its own
// lodged (plus any liblxc container left under it) and temporary directory, and LXD if it
// started it. LXD's own initialisation (the `default` dir pool and root disk) is kept.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseOptions } from "./lib/options.mjs";
import { lxcMonitorOf, memoryOfAll, pidsInNsOf, tree } from "./lib/proc.mjs";
import { http, run, sleep } from "./lib/run.mjs";
import { Bench, LODGE_CLI, LODGED, ROOT, inBatches, log, must } from "./lib/servers.mjs";
import { COMPARE_HEADER, compare, compareRow, errorLines, fmtKiB, fmtLoad, fmtServers, fmtMs, summary, table } from "./lib/stats.mjs";

// What users run: the launcher, which hands the command to a warm spare when one waits
// (native/launcher/lodge.c); without one it starts Node like dist/lodge.js.
const LODGE_LAUNCHER = join(ROOT, "dist/lodge");
const PARTS = ["single", "api", "parallel", "memory", "list"];

const opts = parseOptions(process.argv.slice(2), {
  script: "instances.mjs",
  usage:
    "node bench/instances.mjs [--runs N] [--list-runs N] [--instances N] [--parallel N] [--memory N]\n" +
    "                                [--lodge-dir DIR] [--lxd-socket PATH] [--no-lxd] [--only PARTS] [--json] [--report FILE]",
  parts: PARTS,
  defaults: { listRuns: null, instances: 100, parallel: 10, memory: 10 },
  flags: {
    "--list-runs": (o, v, int) => (o.listRuns = int(v(), "--list-runs")),
    "--instances": (o, v, int) => (o.instances = int(v(), "--instances")),
    "--parallel": (o, v, int) => (o.parallel = int(v(), "--parallel")),
    "--memory": (o, v, int) => (o.memory = int(v(), "--memory")),
  },
});
opts.listRuns ??= opts.runs;
if (opts.report) {
  printText(JSON.parse(readFileSync(opts.report, "utf8")));
  process.exit(0);
}

const bench = new Bench({ prefix: `lb${process.pid}`, tmpName: "lodge-bench", opts });
const PREFIX = bench.prefix;
const newName = (kind) => bench.newName(kind);
const lxc = (server, args, timeoutMs) => bench.lxc(server, args, timeoutMs);
const sample = (what, fn) => bench.sample(what, fn);

/** An `lxc exec` that has not returned after this long is killed and its sample dropped (LXD
 * 5.0.2's exec occasionally never returns although the command has exited). */
const EXEC_HANG_MS = 20000;

/** `lxc exec NAME -- true`; throws when it hangs. */
async function execTrue(server, name) {
  const r = await lxc(server, ["exec", name, "--", "true"], EXEC_HANG_MS);
  if (r.code === "timeout") throw new Error(`lxc exec ${name} -- true hung (killed after ${EXEC_HANG_MS / 1000} s; sample dropped)`);
  return r;
}

/** Polls `lxc exec NAME -- true` until it succeeds (each failure retried after 10 ms). */
async function waitExec(server, name, timeoutMs = 60000) {
  const t0 = performance.now();
  let last;
  for (;;) {
    last = await execTrue(server, name);
    if (last.code === 0) return;
    if (performance.now() - t0 > timeoutMs) must(last, `exec in ${name} (gave up after ${timeoutMs} ms)`);
    await sleep(10);
  }
}

async function launch(server, name) {
  must(await lxc(server, ["launch", server.image, name, ...server.profileArgs]), `${server.label}: launch ${name}`);
}


// ---------------------------------------------------------------------------------------------
// Measurements

const samples = {}; // metric id -> server key -> ms[]
const rec = (id, key, v) => (((samples[id] ??= {})[key] ??= []).push(v));

async function warmUp(server) {
  const name = newName("w");
  await launch(server, name);
  await waitExec(server, name);
  const inst = await http(server.socket, "GET", `/1.0/instances/${name}`);
  const devs = inst.json?.metadata?.expanded_devices ?? inst.json?.metadata?.devices ?? {};
  server.nics = Object.entries(devs).filter(([, d]) => d.type === "nic").map(([k]) => k);
  if (server.nics.length) throw new Error(`${server.label}: instances get a NIC (${server.nics.join(", ")}); the bench needs none`);
  must(await lxc(server, ["delete", "--force", name]), "delete warm-up");
}

async function singleRun(server, i) {
  const n = newName("s");
  await sample(`${server.label} single run ${i}`, async () => {
    let t0 = performance.now();
    await launch(server, n);
    await waitExec(server, n);
    rec("launch_exec", server.key, performance.now() - t0);
    for (let k = 0; k < 3; k++) rec("exec", server.key, must(await execTrue(server, n), "exec").ms);
    rec("client_floor", server.key, must(await lxc(server, ["--version"]), "lxc --version").ms);
    rec("stop_clean", server.key, must(await lxc(server, ["stop", n]), "stop").ms);
    t0 = performance.now();
    must(await lxc(server, ["start", n]), "start");
    await waitExec(server, n);
    rec("start_exec", server.key, performance.now() - t0);
    rec("stop_force", server.key, must(await lxc(server, ["stop", "--force", n]), "stop --force").ms);
    must(await lxc(server, ["start", n]), "start");
    await waitExec(server, n);
    rec("delete_force", server.key, must(await lxc(server, ["delete", "--force", n]), "delete --force").ms);
  });
}

/** A request whose async operation is then waited for; returns ms for the whole, throws on failure. */
async function apiOp(server, method, path, body) {
  if (bench.aborted) throw new Error("interrupted");
  const t0 = performance.now();
  const r = await http(server.socket, method, path, body, 120000);
  if (r.status >= 400) throw new Error(`${method} ${path}: ${r.status} ${r.json?.error ?? r.body.slice(0, 200)}`);
  let meta = r.json?.metadata;
  if (r.json?.type === "async") {
    const id = r.json.metadata?.id ?? String(r.json.operation).split("/").pop();
    const w = await http(server.socket, "GET", `/1.0/operations/${id}/wait?timeout=120`, undefined, 130000);
    meta = w.json?.metadata;
    if (w.status !== 200 || meta?.status !== "Success") throw new Error(`${method} ${path}: operation ${meta?.status ?? w.status}: ${meta?.err ?? w.json?.error ?? ""}`);
  }
  return { ms: performance.now() - t0, meta };
}

async function apiRun(server, i) {
  const n = newName("a");
  const profiles = server.profileArgs.length ? { profiles: [server.profileArgs[1]] } : {};
  const state = (action, extra = {}) => apiOp(server, "PUT", `/1.0/instances/${n}/state`, { action, timeout: 60, ...extra });
  const exec = async () => {
    const r = await apiOp(server, "POST", `/1.0/instances/${n}/exec`, { command: ["true"], "wait-for-websocket": false, interactive: false, "record-output": false, environment: {} });
    if (r.meta?.metadata?.return !== 0) throw new Error(`exec true returned ${JSON.stringify(r.meta?.metadata)}`);
    return r.ms;
  };
  await sample(`${server.label} api run ${i}`, async () => {
    rec("api_create", server.key, (await apiOp(server, "POST", "/1.0/instances", { name: n, type: "container", source: { type: "image", fingerprint: server.image }, ...profiles })).ms);
    rec("api_start", server.key, (await state("start")).ms);
    rec("api_exec_first", server.key, await exec());
    for (let k = 0; k < 3; k++) rec("api_exec", server.key, await exec());
    rec("api_stop_force", server.key, (await state("stop", { force: true })).ms);
    rec("api_delete", server.key, (await apiOp(server, "DELETE", `/1.0/instances/${n}`)).ms);
  });
}

async function parallelRun(server, i) {
  const names = Array.from({ length: opts.parallel }, () => newName("p"));
  await sample(`${server.label} parallel run ${i}`, async () => {
    const t0 = performance.now();
    await Promise.all(names.map(async (n) => {
      await launch(server, n);
      await waitExec(server, n);
    }));
    rec("parallel", server.key, performance.now() - t0);
  });
  await Promise.all(names.map((n) => lxc(server, ["delete", "--force", n])));
}

const memory = {}; // server key -> { count, container: {pss,rss,processes}, daemon: {before, after}, perContainer }

async function memoryPart(server, lodgeServer) {
  const count = opts.memory;
  const names = Array.from({ length: count }, () => newName("m"));
  await sample(`${server.label} memory`, async () => {
    await sleep(500);
    const before = memoryOfAll(tree(server.daemonPid));
    await inBatches(names, 5, async (n) => {
      await launch(server, n);
      await waitExec(server, n);
    });
    await sleep(1000);
    const ctPids = new Set();
    const perCt = [];
    for (const n of names) {
      const s = await http(server.socket, "GET", `/1.0/instances/${n}/state`);
      const pid = s.json?.metadata?.pid;
      if (!pid) throw new Error(`no init pid for ${n}`);
      const ps = [...new Set([...pidsInNsOf(pid), ...lxcMonitorOf(n)])];
      ps.forEach((p) => ctPids.add(p));
      perCt.push(memoryOfAll(ps));
    }
    const after = memoryOfAll(tree(server.daemonPid).filter((p) => !ctPids.has(p)));
    const sum = (k) => perCt.reduce((a, m) => a + m[k], 0);
    memory[server.key] = {
      count,
      containerPss: sum("pss") / count,
      containerRss: sum("rss") / count,
      processesPerContainer: sum("processes") / count,
      daemonBefore: before,
      daemonAfter: after,
      daemonGrowthPss: (after.pss - before.pss) / count,
      daemonGrowthRss: (after.rss - before.rss) / count,
    };
    // Listing with running instances (their state is read).
    for (let r = 0; r < opts.listRuns; r++) {
      rec("list_running", server.key, must(await lxc(server, ["list"]), "lxc list").ms);
      if (server === lodgeServer) rec("lodge_list_running", "lodge", must(await lodgeTyped(["list"]), "lodge list").ms);
    }
  });
  await inBatches(names, 5, (n) => lxc(server, ["delete", "--force", n]));
}

/**
 * `lodge` as a user types it: through the launcher, paced like a person (the spare that the
 * previous command's launcher started in the background is ready after ~0.3 s; commands fired
 * back to back faster than that start cold, as `cold` measures).
 */
async function lodgeTyped(args, { cold = false } = {}) {
  if (bench.aborted) throw new Error("interrupted");
  await sleep(cold ? 50 : 700);
  const env = { ...process.env, LODGE_DIR: bench.lodgeDir, ...(cold ? { LODGE_CLI_WORKER: "0" } : {}) };
  return run(LODGE_LAUNCHER, args, { env, timeoutMs: 120000 });
}

const created = {}; // server key -> ms to create the stopped instances

async function listPart(servers, lodgeServer) {
  const names = Array.from({ length: opts.instances }, () => newName("l"));
  const ok = new Set();
  for (const s of servers) {
    await sample(`${s.label} create ${names.length} stopped`, async () => {
      log(`  ${s.label}: lxc init ×${names.length}, 10 at a time`);
      const t0 = performance.now();
      await inBatches(names, 10, async (n) => must(await lxc(s, ["init", s.image, n, ...s.profileArgs]), `init ${n}`));
      created[s.key] = performance.now() - t0;
      ok.add(s.key);
    });
  }
  for (let r = 0; r < opts.listRuns; r++) {
    for (const s of servers) {
      if (!ok.has(s.key)) continue;
      await sample(`${s.label} list ${r}`, async () => {
        rec("list100", s.key, must(await lxc(s, ["list"]), "lxc list").ms);
        const res = await http(s.socket, "GET", "/1.0/instances?recursion=1");
        const n = (res.json?.metadata ?? []).filter((i) => i.name?.startsWith(PREFIX)).length;
        if (res.status !== 200 || n < names.length) throw new Error(`GET recursion=1: status ${res.status}, ${n} of ${names.length} instances`);
        rec("api100", s.key, res.ms);
        if (s === lodgeServer) {
          rec("lodge_list100", "lodge", must(await lodgeTyped(["list"]), "lodge list").ms);
          rec("lodge_list100_cold", "lodge", must(await lodgeTyped(["list"], { cold: true }), "lodge list (cold)").ms);
          // Floors: a Node process doing nothing, and the lxc client not talking to any server.
          rec("floor_node", "lodge", must(await run(process.execPath, ["-e", "0"]), "node -e 0").ms);
          rec("floor_lxc", "lodge", must(await run("lxc", ["--version"], { env: s.env }), "lxc --version").ms);
        }
      });
    }
  }
  for (const s of servers) await inBatches(names, 10, (n) => lxc(s, ["delete", "--force", n]));
}


// ---------------------------------------------------------------------------------------------
// Report

const METRICS = [
  { id: "launch_exec", label: "launch → working exec", target: 0.3 },
  { id: "exec", label: "exec -- true", target: 0.5 },
  { id: "start_exec", label: "start (stopped) → exec-able", target: 0.25 },
  { id: "stop_clean", label: "stop (clean)¹" },
  { id: "stop_force", label: "stop --force", target: 0.15 },
  { id: "delete_force", label: "delete --force (running)", target: 0.15 },
  { id: "parallel", label: `${opts.parallel} parallel launches → all exec-able`, target: 0.4 },
  { id: "client_floor", label: "lxc --version (the client's start-up, no server)²" },
  { id: "api_create", label: "API: create (POST /1.0/instances)", api: true },
  { id: "api_start", label: "API: start (PUT state)", api: true },
  { id: "api_exec_first", label: "API: first exec after start", api: true },
  { id: "api_exec", label: "API: exec true (no websockets)", api: true },
  { id: "api_stop_force", label: "API: stop force (PUT state)", api: true },
  { id: "api_delete", label: "API: DELETE (stopped)", api: true },
  { id: "list_running", label: `lxc list, ${opts.memory} running` },
  { id: "list100", label: `lxc list, ${opts.instances} stopped` },
  { id: "api100", label: `GET /1.0/instances?recursion=1, ${opts.instances} stopped` },
];
const CLI = [
  { id: "lodge_list_running", vs: "list_running", label: `lodge list vs lxc list on lodged, ${opts.memory} running` },
  { id: "lodge_list100", vs: "list100", label: `lodge list vs lxc list on lodged, ${opts.instances} stopped` },
  { id: "lodge_list100_cold", vs: "list100", label: `lodge list without a warm spare (LODGE_CLI_WORKER=0), ${opts.instances} stopped` },
];

function report(meta) {
  const out = { meta, metrics: [], cli: [], floors: {}, memory, created, errors: bench.errors };
  if (samples.floor_node) out.floors.node = { ...summary(samples.floor_node.lodge), samples: samples.floor_node.lodge };
  if (samples.floor_lxc) out.floors.lxc = { ...summary(samples.floor_lxc.lodge), samples: samples.floor_lxc.lodge };
  out.metrics.push(...compare(METRICS, samples));
  // A clean stop of busybox is ≥ 2 s by itself: what each server adds above that.
  const sc = samples.stop_clean;
  if (sc) {
    const less = (v) => v && v.map((x) => x - 2000);
    const lodge = sc.lodge && summary(less(sc.lodge));
    const lxd = sc.lxd && summary(less(sc.lxd));
    const at = out.metrics.findIndex((x) => x.id === "stop_clean") + 1;
    out.metrics.splice(at, 0, { id: "stop_clean_over_floor", label: "stop (clean) − busybox's 2 s¹", derived: true, lodge, lxd, ratio: lodge && lxd ? lodge.median / lxd.median : null, target: 0.15, met: lodge && lxd ? lodge.median / lxd.median <= 0.15 : null });
  }
  for (const c of CLI) {
    const a = samples[c.id]?.lodge;
    const b = samples[c.vs]?.lodge;
    if (!a || !b) continue;
    const lodge = summary(a);
    const lxcOnLodge = summary(b);
    const ratio = lodge.median / lxcOnLodge.median;
    out.cli.push({ id: c.id, label: c.label, lodgeCli: { ...lodge, samples: a }, lxcCli: lxcOnLodge, ratio, target: 1, met: ratio <= 1 });
  }
  return out;
}

function printText(r) {
  const m = r.meta;
  const lines = [];
  lines.push(`Lodge vs LXD through the same lxc client (${m.lxcClient}), busybox, no NIC; ${m.runs} runs, list at ${m.instances} instances ×${m.listRuns}`);
  lines.push(fmtServers(m));
  lines.push(fmtLoad(m));
  lines.push("");
  const rows = [COMPARE_HEADER];
  const metricRow = (x) => compareRow(x);
  for (const x of r.metrics) if (!x.api) rows.push(metricRow(x));
  for (const k of Object.keys(r.created)) rows.push([`create ${m.instances} stopped (lxc init, 10 at a time), total`, k === "lodge" ? fmtMs(r.created.lodge) : "", "", k === "lxd" ? fmtMs(r.created.lxd) : "", "", "", "", ""]);
  lines.push(table(rows));
  const api = r.metrics.filter((x) => x.api);
  if (api.length) {
    lines.push("");
    lines.push("Daemon side: the REST API straight over the socket (no lxc client, no websockets), each operation waited for");
    lines.push(table([["step", "Lodge median", "p90", "LXD median", "p90", "Lodge/LXD", "", ""], ...api.map(metricRow)]));
  }
  if (r.cli.length) {
    lines.push("");
    const c = [["CLI against lodged", "lodge median", "p90", "lxc median", "p90", "lodge/lxc", "target", "met"]];
    for (const x of r.cli) c.push([x.label, fmtMs(x.lodgeCli.median), fmtMs(x.lodgeCli.p90), fmtMs(x.lxcCli.median), fmtMs(x.lxcCli.p90), `${x.ratio.toFixed(2)}×`, "≤ 1×", x.met ? "yes" : "NO"]);
    if (r.floors.node && r.floors.lxc) c.push(["floors: node -e 0 vs lxc --version (no server)", fmtMs(r.floors.node.median), fmtMs(r.floors.node.p90), fmtMs(r.floors.lxc.median), fmtMs(r.floors.lxc.p90), `${(r.floors.node.median / r.floors.lxc.median).toFixed(2)}×`, "", ""]);
    lines.push(table(c));
  }
  if (Object.keys(r.memory).length) {
    lines.push("");
    const mm = [["memory per running container", "Lodge", "LXD", "Lodge/LXD"]];
    const row = (label, f, fmt = fmtKiB) => {
      const a = r.memory.lodge && f(r.memory.lodge);
      const b = r.memory.lxd && f(r.memory.lxd);
      mm.push([label, a == null ? "–" : fmt(a), b == null ? "–" : fmt(b), a != null && b ? `${(a / b).toFixed(2)}×` : "–"]);
    };
    row("container processes, PSS", (x) => x.containerPss);
    row("container processes, RSS", (x) => x.containerRss);
    row("processes per container", (x) => x.processesPerContainer, (v) => v.toFixed(1));
    row("daemon tree growth / container, PSS", (x) => x.daemonGrowthPss);
    row("daemon tree growth / container, RSS", (x) => x.daemonGrowthRss);
    row("total (container + daemon growth), PSS", (x) => x.containerPss + x.daemonGrowthPss);
    row("daemon tree PSS before → after", (x) => x.daemonAfter.pss, (v) => fmtKiB(v));
    lines.push(table(mm));
    lines.push(`(${m.memoryCount} containers running at once; container processes = every process in the container's pid namespace plus`);
    lines.push(" its liblxc monitor; daemon tree = the daemon and its descendants, less container processes, after minus before, / N)");
  }
  lines.push("");
  lines.push("¹ a clean stop of busybox init takes about 2 s by itself (it sleeps 1 s after SIGTERM and 1 s after SIGKILL);");
  lines.push("  the issue's 700 ms for LXD's stop matches its --force stop here.");
  lines.push("² every lxc command pays this before its first request (timed once per run against each server; the");
  lines.push("  same binary): an exec or start through lxc cannot take less, whatever the server does.");
  lines.push(...errorLines(r.errors));
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  // The bench loads the machine itself (10 parallel launches, LXD); judge others by the start.
  const { lodge, lxd } = await bench.start({ build: [LODGED, LODGE_CLI, LODGE_LAUNCHER] });
  const servers = bench.servers;

  const image = await bench.buildImage("images/busybox.yaml");
  for (const s of servers) {
    await bench.ensureRootDisk(s, { noNic: true });
    await bench.importImage(s, image);
  }
  for (const s of servers) {
    log(`${s.label} (${s.version}): warm-up launch`);
    await warmUp(s);
  }

  if (opts.only.has("single")) {
    for (let i = 0; i < opts.runs; i++) {
      log(`single: run ${i + 1}/${opts.runs}`);
      for (const s of servers) await singleRun(s, i);
    }
  }
  if (opts.only.has("api")) {
    for (let i = 0; i < opts.runs; i++) {
      log(`api: run ${i + 1}/${opts.runs}`);
      for (const s of servers) await apiRun(s, i);
    }
  }
  if (opts.only.has("parallel") && opts.parallel > 0) {
    for (let i = 0; i < opts.runs; i++) {
      log(`parallel: run ${i + 1}/${opts.runs} (${opts.parallel} launches)`);
      for (const s of servers) await parallelRun(s, i);
    }
  }
  if (opts.only.has("memory") && opts.memory > 0) {
    for (const s of servers) {
      log(`memory: ${s.label}, ${opts.memory} running`);
      await memoryPart(s, lodge);
    }
  }
  if (opts.only.has("list") && opts.instances > 0) {
    log(`list: ${opts.instances} stopped instances per server`);
    await listPart(servers, lodge);
  }

  const meta = bench.meta({
    listRuns: opts.listRuns,
    instances: opts.instances,
    parallel: opts.parallel,
    memoryCount: opts.memory,
    profiles: Object.fromEntries(servers.map((s) => [s.key, s.profileArgs.length ? s.profileArgs[1] : "default"])),
    image: image.fingerprint,
  });
  return report(meta);
}

await bench.main(main, { json: opts.json, print: printText });
