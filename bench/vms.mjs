#!/usr/bin/env node
// Virtual machines on Lodge through the real `lxc` client: launch → agent answering for the tiny
// VM image and the Debian VM image, `lxc exec VM -- true`, and the host memory of an idle VM
// besides its guest RAM. Not a test: the numbers depend on the machine and its load (printed with
// them). Needs root, QEMU, the `lxc` client (Debian's lxd-client); debootstrap and Debian's
// archive to build the Debian VM image.
//
//   node bench/vms.mjs [options]
//
//   --runs N             launches per image (default 5)
//   --exec-runs N        `lxc exec VM -- true` calls timed (default 30)
//   --idle-s N           seconds an idle VM is left before its memory is read (default 10; 0 skips
//                        the memory readings)
//   --debian-image DIR   use a Debian VM image built earlier with `lodge image build
//                        images/debian-vm.yaml --split -o DIR` (kept afterwards) instead of
//                        building one (a few minutes: debootstrap)
//   --lodge-dir DIR      use the lodged already serving DIR/unix.socket
//   --lxd-socket PATH    the LXD to try (default /var/lib/lxd/unix.socket; started and stopped by
//                        the bench when nothing answers there and `lxd` is installed)
//   --no-lxd             do not try LXD
//   --only LIST          comma-separated parts: tiny,debian,exec (default all)
//   --json               the results as JSON on stdout (progress always goes to stderr)
//   --report FILE        print the table of a JSON result saved earlier, run nothing
//
// LXD 5.0.2 needs KVM and vhost-vsock for VMs. The bench imports the tiny VM image into LXD and
// tries one `lxc launch --vm` there: where LXD refuses (as on the development machines, "vhost_vsock
// kernel module not loaded"), its answer is printed and the rows are Lodge's alone; where LXD runs
// the VM, the same rows are timed on it too, interleaved run by run.
//
// What it times:
//   tiny, debian  `lxc launch IMAGE NAME --vm` (no NIC, default limits: 1 vCPU, 1 GiB), then
//                 `lxc exec NAME -- true` every 200 ms until it exits 0: launch → agent answering,
//                 and when `lxc launch` returned. One untimed warm-up launch of the tiny image
//                 first. On the first run of each image the idle VM's memory is read after
//                 --idle-s seconds (see memoryOf below). Each VM is deleted (`lxc delete -f`) after
//                 its run.
//   exec          one tiny VM, agent up: `lxc exec NAME -- true` --exec-runs times (after 3 untimed),
//                 each followed by the same on the REST API alone (POST .../exec of `true` without
//                 websockets, then GET the operation's /wait), which splits the daemon and agent's
//                 time from the client's; and `lxc --version`, the client's own start-up.
//
// Everything it creates is named vb<pid>-… and removed at the end, also on failure or Ctrl-C:
// instances, the images it imported, the profile it made, its lodged (then any QEMU left under
// its directory is killed), the Debian image it built, and its temporary directory; and LXD is
// stopped if the bench started it.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseOptions } from "./lib/options.mjs";
import { http, run, sleep } from "./lib/run.mjs";
import { Bench, log, must } from "./lib/servers.mjs";
import { COMPARE_HEADER, compare, compareRow, errorLines, fmtKiB, fmtLoad, fmtServers, table } from "./lib/stats.mjs";

const PARTS = ["tiny", "debian", "exec"];
const AGENT_TIMEOUT_MS = 180000;
const POLL_MS = 200;

const opts = parseOptions(process.argv.slice(2), {
  script: "vms.mjs",
  usage:
    "node bench/vms.mjs [--runs N] [--exec-runs N] [--idle-s N] [--debian-image DIR] [--lodge-dir DIR]\n" +
    "                          [--lxd-socket PATH] [--no-lxd] [--only tiny,debian,exec] [--json] [--report FILE]",
  parts: PARTS,
  defaults: { runs: 5, execRuns: 30, idleS: 10, debianImage: null },
  flags: {
    "--exec-runs": (o, v, int) => (o.execRuns = int(v(), "--exec-runs")),
    "--idle-s": (o, v, int) => (o.idleS = int(v(), "--idle-s")),
    "--debian-image": (o, v) => (o.debianImage = v()),
  },
});
if (opts.report) {
  printText(JSON.parse(readFileSync(opts.report, "utf8")));
  process.exit(0);
}

const METRICS = [
  { id: "tiny_launch", label: "tiny VM: `lxc launch --vm` returned" },
  { id: "tiny_agent", label: "tiny VM: launch → agent answering (exec works)", goalMs: 8000 },
  { id: "debian_launch", label: "Debian VM: `lxc launch --vm` returned" },
  { id: "debian_agent", label: "Debian VM: launch → agent answering (exec works)", goalMs: 20000 },
  { id: "exec", label: "`lxc exec VM -- true` (tiny VM, agent up)", goalMs: 100 },
  { id: "api_exec", label: "API: exec `true` (POST exec, no websockets, then /wait)" },
  { id: "lxc_version", label: "`lxc --version` (the client's start-up, no server)" },
];

const bench = new Bench({ prefix: `vb${process.pid}`, tmpName: "lodge-vmbench", opts });
const lxc = (server, args, timeoutMs) => bench.lxc(server, args, timeoutMs);
const samples = {};
const rec = (id, key, v) => (((samples[id] ??= {})[key] ??= []).push(v));
const memory = {}; // image -> server key -> reading
const notes = [];

// A VM lodged left running (a failed delete, an interrupt) outlives it: killed once lodged is gone.
bench.afterLodge.push(async (dir) => {
  const root = join(dir, "virtual-machines");
  for (const n of readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)) {
    const pid = Number(readText(join(root, n, "qemu.pid")).trim());
    if (pid > 0 && /qemu-system/.test(readText(`/proc/${pid}/cmdline`))) {
      log(`cleaning up: killing QEMU ${pid} of ${n} (left by lodged)`);
      process.kill(pid, "SIGKILL");
    }
  }
});

function readText(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** The image `lodge image build --split` made in dir: its metadata tarball and its disk. */
function vmImageIn(dir) {
  const all = readdirSync(dir);
  const meta = all.filter((f) => /\.tar(\.xz|\.gz)?$/.test(f));
  const disk = all.filter((f) => /\.(qcow2|img)$/.test(f));
  if (meta.length !== 1 || disk.length !== 1) throw new Error(`expected a metadata tarball and a qcow2 disk in ${dir}, found: ${all.join(", ")}`);
  return [join(dir, meta[0]), join(dir, disk[0])];
}

async function imageFrom(files) {
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  for (const f of files) for await (const c of (await import("node:fs")).createReadStream(f)) h.update(c);
  return { files, fingerprint: h.digest("hex") };
}

async function buildVmImage(definition, dir) {
  if (dir) return imageFrom(vmImageIn(dir));
  const out = join(bench.base, `image-${bench.seq++}`);
  (await import("node:fs")).mkdirSync(out);
  log(`building ${definition} (split)`);
  const t0 = performance.now();
  must(
    await run(process.execPath, [join(import.meta.dirname, "../dist/lodge.js"), "image", "build", join(import.meta.dirname, "..", definition), "--split", "-o", out], {
      env: { ...process.env, LODGE_DIR: bench.lodgeDir },
      timeoutMs: 1800000,
    }),
    `lodge image build ${definition}`,
  );
  log(`  built in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return imageFrom(vmImageIn(out));
}

// ---------------------------------------------------------------------------------------------
// Memory of an idle VM

/**
 * QEMU's memory from /proc/PID/smaps, split by mapping. The guest's RAM is one anonymous mapping
 * of the size given with -m (limits.memory): its RSS is the guest RAM the guest has touched (what
 * the guest uses plus what it touched once and freed: Linux does not hand pages back). What is
 * left of QEMU's RSS is the VM's cost besides its guest RAM; under TCG, the largest part of it is
 * the translation cache (the biggest rwx mapping), shown apart. PSS is given too (shared libraries
 * counted once per sharer).
 */
function memoryOf(pid, guestMiB) {
  const text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  const maps = [];
  let cur = null;
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      cur = { perms: head[3], name: head[4], size: 0, rss: 0, pss: 0 };
      maps.push(cur);
      continue;
    }
    const f = /^(Size|Rss|Pss):\s+(\d+) kB/.exec(line);
    if (f && cur) cur[f[1].toLowerCase()] = Number(f[2]);
  }
  const guestKiB = guestMiB * 1024;
  const ram = maps.filter((m) => !m.name && m.size >= guestKiB && m.size <= guestKiB + 16384).sort((a, b) => b.rss - a.rss)[0];
  const tcg = maps.filter((m) => m.perms.startsWith("rwx")).sort((a, b) => b.size - a.size)[0];
  const sum = (k) => maps.reduce((a, m) => a + m[k], 0);
  const rss = sum("rss");
  return {
    guestMiB,
    rss,
    pss: sum("pss"),
    guestTouched: ram?.rss ?? null,
    besidesGuest: ram ? rss - ram.rss : null,
    tcgCache: tcg?.rss ?? 0,
    other: ram ? rss - ram.rss - (tcg?.rss ?? 0) : null,
  };
}

async function vmState(server, name) {
  return (await http(server.socket, "GET", `/1.0/instances/${name}/state`)).json?.metadata;
}

// ---------------------------------------------------------------------------------------------
// Measurements

/** `lxc launch --vm`, then exec until it answers: { launched, ready } in ms. */
async function launchToAgent(server, image, name) {
  const t0 = performance.now();
  must(await lxc(server, ["launch", image, name, "--vm", ...server.profileArgs]), `${server.label}: launch ${name}`);
  const launched = performance.now() - t0;
  for (;;) {
    const r = await lxc(server, ["exec", name, "--", "true"], 30000);
    if (r.code === 0) return { launched, ready: performance.now() - t0 };
    if (performance.now() - t0 > AGENT_TIMEOUT_MS) throw new Error(`${name}: the agent did not answer in ${AGENT_TIMEOUT_MS / 1000} s (last: ${(r.stderr || r.stdout).trim()})`);
    await sleep(POLL_MS);
  }
}

async function launchRun(server, kind, i, { warmUp = false } = {}) {
  const name = bench.newName(warmUp ? "w" : kind[0]);
  await bench.sample(`${server.label} ${kind} ${warmUp ? "warm-up" : `run ${i}`}`, async () => {
    try {
      const r = await launchToAgent(server, server.images[kind], name);
      log(`  ${server.label} ${kind}${warmUp ? " (warm-up)" : ""}: launch returned ${(r.launched / 1000).toFixed(2)} s, agent answering ${(r.ready / 1000).toFixed(2)} s`);
      if (warmUp) return;
      rec(`${kind}_launch`, server.key, r.launched);
      rec(`${kind}_agent`, server.key, r.ready);
      if (i === 0 && opts.idleS > 0) {
        await sleep(opts.idleS * 1000);
        const st = await vmState(server, name);
        const limit = (await http(server.socket, "GET", `/1.0/instances/${name}`)).json?.metadata?.expanded_config?.["limits.memory"];
        const guestMiB = limit ? Math.floor(parseSizeMiB(limit)) : 1024;
        memory[kind] = { ...(memory[kind] ?? {}), [server.key]: { ...memoryOf(st.pid, guestMiB), guestUsed: st.memory?.usage ?? null } };
        const m = memory[kind][server.key];
        log(`  ${server.label} ${kind} idle ${opts.idleS} s: QEMU RSS ${fmtKiB(m.rss)}, guest RAM touched ${fmtKiB(m.guestTouched)}, besides it ${fmtKiB(m.besidesGuest)} (TCG cache ${fmtKiB(m.tcgCache)})`);
      }
    } finally {
      await lxc(server, ["delete", "-f", name], 120000);
    }
  });
}

function parseSizeMiB(v) {
  const m = /^(\d+(?:\.\d+)?)\s*(B|kB|KiB|MB|MiB|GB|GiB)?$/.exec(v);
  if (!m) return 1024;
  const unit = { B: 1 / 1048576, kB: 1000 / 1048576, KiB: 1 / 1024, MB: 1e6 / 1048576, MiB: 1, GB: 1e9 / 1048576, GiB: 1024 }[m[2] ?? "B"];
  return Number(m[1]) * unit;
}

async function execRuns(server) {
  const name = bench.newName("x");
  await bench.sample(`${server.label} exec`, async () => {
    try {
      await launchToAgent(server, server.images.tiny, name);
      for (let i = 0; i < 3; i++) must(await lxc(server, ["exec", name, "--", "true"]), `${server.label}: exec warm-up`);
      for (let i = 0; i < opts.execRuns; i++) {
        rec("exec", server.key, must(await lxc(server, ["exec", name, "--", "true"], 20000), `${server.label}: exec ${i}`).ms);
        rec("api_exec", server.key, await apiExec(server, name));
      }
      for (let i = 0; i < 10; i++) rec("lxc_version", server.key, (await run("lxc", ["--version"], { env: server.env })).ms);
    } finally {
      await lxc(server, ["delete", "-f", name], 120000);
    }
  });
}

/** Imports the tiny image into LXD and tries one VM there: true when LXD runs it. */
async function lxdRunsVms(lxd, tiny) {
  try {
    await bench.ensureRootDisk(lxd, { noNic: true });
    await bench.importImage(lxd, tiny);
  } catch (e) {
    bench.lxdRefusal = `LXD did not take the VM image: ${e.message}`;
    return false;
  }
  const name = bench.newName("t");
  const r = await lxc(lxd, ["launch", tiny.fingerprint, name, "--vm", ...lxd.profileArgs], 120000);
  await lxc(lxd, ["delete", "-f", name], 120000);
  if (r.code === 0) return true;
  bench.lxdRefusal = (r.stderr || r.stdout).trim();
  return false;
}

async function driversOf(server) {
  const env = (await http(server.socket, "GET", "/1.0")).json?.metadata?.environment ?? {};
  const names = String(env.driver ?? "").split(" | ");
  const versions = String(env.driver_version ?? "").split(" | ");
  return names.map((n, i) => `${n} ${versions[i] ?? ""}`.trim()).join(", ");
}

/** POST exec of `true` without websockets or a client, then the operation's /wait: ms. */
async function apiExec(server, name) {
  const t0 = performance.now();
  const r = await http(server.socket, "POST", `/1.0/instances/${name}/exec`, { command: ["true"], "wait-for-websocket": false, interactive: false, "record-output": false });
  const op = r.json?.operation;
  if (r.status !== 202 || !op) throw new Error(`${server.label}: exec: ${r.status} ${r.body.slice(0, 200)}`);
  const w = await http(server.socket, "GET", `${op}/wait?timeout=20`);
  const code = w.json?.metadata?.metadata?.return;
  if (code !== 0) throw new Error(`${server.label}: exec true returned ${code}: ${w.body.slice(0, 200)}`);
  return performance.now() - t0;
}

async function main() {
  const { lodge, lxd } = await bench.start();
  const servers = [lodge];
  await bench.ensureRootDisk(lodge, { noNic: true });
  const tiny = await buildVmImage("images/tiny-vm.yaml", null);
  await bench.importImage(lodge, tiny);
  lodge.images = { tiny: tiny.fingerprint };
  if (lxd) {
    log("LXD: trying a VM there");
    if (await lxdRunsVms(lxd, tiny)) {
      lxd.images = { tiny: tiny.fingerprint };
      servers.push(lxd);
    } else {
      log(`LXD refuses VMs here: ${bench.lxdRefusal}`);
      notes.push(`LXD ${lxd.version} refused \`lxc launch --vm\` of the tiny image: ${bench.lxdRefusal}`);
    }
  } else notes.push(`LXD not tried: ${bench.lxdMissing}`);

  if (opts.only.has("debian")) {
    const debian = await buildVmImage("images/debian-vm.yaml", opts.debianImage);
    for (const s of servers) {
      await bench.importImage(s, debian);
      s.images.debian = debian.fingerprint;
    }
  }

  for (const s of servers) await launchRun(s, "tiny", 0, { warmUp: true });
  for (const kind of ["tiny", "debian"]) {
    if (!opts.only.has(kind)) continue;
    log(`${kind}: ${opts.runs} launches per server`);
    for (let i = 0; i < opts.runs; i++) for (const s of servers) await launchRun(s, kind, i);
  }
  if (opts.only.has("exec")) {
    log(`exec: ${opts.execRuns} calls per server`);
    for (const s of servers) await execRuns(s);
  }
  return {
    meta: bench.meta({ execRuns: opts.execRuns, idleS: opts.idleS, drivers: await driversOf(lodge) }),
    results: compare(METRICS, samples).map((x) => ({ ...x, met: x.goalMs && x.lodge ? x.lodge.median <= x.goalMs : null })),
    memory,
    notes,
    errors: bench.errors,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

function printText(r) {
  const m = r.meta;
  const lines = [
    `VMs: ${m.date}, runs ${m.runs}, exec runs ${m.execRuns}, lxc client ${m.lxcClient}`,
    fmtServers(m) + (m.drivers ? `   (lodged's instance drivers: ${m.drivers})` : ""),
    fmtLoad(m),
    "",
    table([
      [...COMPARE_HEADER.slice(0, 6), "target (Lodge)", "met"],
      ...r.results.map((x) => [...compareRow(x, false), x.goalMs ? `≤ ${x.goalMs >= 1000 ? `${x.goalMs / 1000} s` : `${x.goalMs} ms`}` : "", x.met == null ? "" : x.met ? "yes" : "NO"]),
    ]),
  ];
  const mem = Object.entries(r.memory ?? {}).flatMap(([img, bySrv]) => Object.entries(bySrv).map(([srv, v]) => [img, srv, v]));
  if (mem.length) {
    lines.push("", `Idle VM memory (after ${m.idleS} s idle; QEMU's /proc/PID/smaps):`);
    lines.push(
      table([
        ["image", "server", "guest RAM (-m)", "QEMU RSS", "guest RAM touched", "besides guest RAM", "of which TCG cache", "rest of QEMU", "QEMU PSS", "guest's own use"],
        ...mem.map(([img, srv, v]) => [img, srv, `${v.guestMiB} MiB`, fmtKiB(v.rss), fmtKiB(v.guestTouched), fmtKiB(v.besidesGuest), fmtKiB(v.tcgCache), fmtKiB(v.other), fmtKiB(v.pss), v.guestUsed == null ? "–" : fmtKiB(v.guestUsed / 1024)]),
      ]),
    );
  }
  if (r.notes?.length) lines.push("", ...r.notes);
  lines.push(...errorLines(r.errors ?? []));
  console.log(lines.join("\n"));
}

bench.main(main, { json: opts.json, print: printText });
