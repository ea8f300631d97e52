#!/usr/bin/env node
// Storage, Lodge vs LXD side by side through the same real `lxc` client, on the same driver on
// both sides: launch on btrfs and dir pools the bench makes; snapshot, restore, copy, export and
// import of an instance holding 50 MiB; and a Debian bookworm image created and booted until
// systemd says it is up, on the default (dir) pool. Not a test: the numbers depend on the machine
// and its load (the load average is printed with them). Needs root, liblxc, btrfs-progs, loop
// devices, debootstrap (for the Debian image), the `lxc` client (Debian's lxd-client) and, for the
// LXD side, Debian's `lxd` package (apt-get install -y lxd).
//
//   node bench/storage.mjs [options]
//
//   --runs N             runs per timed operation (default 5)
//   --only LIST          comma-separated parts: launch,data,debian (default: all)
//   --data-mib N         random data written into the instance for the data part (default 50)
//   --pool-size SIZE     size of the btrfs pools' loop files (default 3GiB)
//   --debian-image DIR   use the Debian image `lodge image build images/debian-bookworm.yaml
//                        --split` left in DIR (kept) instead of building one (~2 minutes)
//   --lodge-dir DIR      use the lodged already serving DIR/unix.socket (default: start one on a
//                        temporary directory, building dist/ with `npm run build` if missing)
//   --lxd-socket PATH    use the LXD at PATH (default /var/lib/lxd/unix.socket; when nothing
//                        answers there and `lxd` is installed, the bench starts LXD itself, gives it
//                        a `dir` pool `default` if it has none, and stops it at the end)
//   --no-lxd             Lodge alone
//   --json               print the results as JSON on stdout (progress always goes to stderr)
//   --report FILE        print the table of a JSON result saved earlier, run nothing
//
// What it times, interleaving the servers run by run (busybox and Debian images built with
// `lodge image build`, the same files imported into both servers; no NIC on either side):
//   launch  on each of two pools per server, `lxc storage create PREFIX-b btrfs size=3GiB` (a loop
//           file) and `lxc storage create PREFIX-d dir`: `lxc launch IMAGE X -s POOL` → first
//           successful `lxc exec X -- true` (one untimed warm-up launch per pool first)
//   data    on the same instance (launched as above): N MiB of /dev/urandom written to /root/data
//           and synced, the instance stopped (--force), then `lxc snapshot X s0`, (/root/data
//           deleted with `lxc file delete`, untimed) `lxc restore X s0`, (s0 deleted, untimed),
//           `lxc copy X Y`, `lxc export X FILE` (server-side backup,
//           gzip by default on both, downloaded by the client), (X deleted) `lxc import FILE -s
//           POOL`; the copy's and the import's /root/data are checked against the original's md5
//           on the first run
//   debian  on the default pool (dir on both): `lxc image import META ROOTFS` of the Debian image
//           (timed, for reference), `lxc init` just after the import (first create: the image is
//           unpacked), a second `lxc init` (the image used once already), then `lxc launch` →
//           `lxc exec X -- systemctl is-system-running --wait` answering (running or degraded);
//           the image is deleted after each run so that every run's first create is the first
//
// Everything it creates is named sb<pid>-… and removed at the end, also on failure or Ctrl-C (a
// second Ctrl-C gives up cleaning): instances, pools (and so their loop files), the images and
// profile it imported or created, exported tarballs, its own lodged and temporary directory (and
// any mount or loop device lodged left under it), and LXD if it started it. LXD's own
// initialisation (the `default` dir pool and root disk) is kept.
import { readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseOptions } from "./lib/options.mjs";
import { http, run, sleep } from "./lib/run.mjs";
import { Bench, imageIn, log, must } from "./lib/servers.mjs";
import { COMPARE_HEADER, compare, compareRow, errorLines, fmtLoad, fmtServers, fmtMs, table } from "./lib/stats.mjs";

const PARTS = ["launch", "data", "debian"];
const DRIVERS = ["btrfs", "dir"];
const EXEC_TIMEOUT_MS = 60000;
const SYSTEMD_TIMEOUT_MS = 180000;

const opts = parseOptions(process.argv.slice(2), {
  script: "storage.mjs",
  usage:
    "node bench/storage.mjs [--runs N] [--only launch,data,debian] [--data-mib N] [--pool-size SIZE] [--debian-image DIR]\n" +
    "                              [--lodge-dir DIR] [--lxd-socket PATH] [--no-lxd] [--json] [--report FILE]",
  parts: PARTS,
  defaults: { runs: 5, dataMiB: 50, poolSize: "3GiB", debianImage: null },
  flags: {
    "--data-mib": (o, v, int) => (o.dataMiB = int(v(), "--data-mib")),
    "--pool-size": (o, v) => (o.poolSize = v()),
    "--debian-image": (o, v) => (o.debianImage = resolve(v())),
  },
});

const METRICS = [
  { id: "launch_btrfs", label: "launch → exec-able, btrfs pool", target: 0.3 },
  { id: "launch_dir", label: "launch → exec-able, dir pool", target: 0.5 },
  ...DRIVERS.flatMap((d) => [
    { id: `snapshot_${d}`, label: `snapshot (${opts.dataMiB} MiB, stopped), ${d}`, target: 0.5 },
    { id: `restore_${d}`, label: `restore, ${d}`, target: 0.5 },
    { id: `copy_${d}`, label: `copy, ${d}`, target: 0.5 },
    { id: `export_${d}`, label: `export (to a file on the client), ${d}`, target: 0.5 },
    { id: `import_${d}`, label: `import (from that file), ${d}`, target: 0.5 },
  ]),
  { id: "pool_create_btrfs", label: `storage create btrfs size=${opts.poolSize} (1 sample)` },
  { id: "pool_create_dir", label: "storage create dir (1 sample)" },
  { id: "deb_import", label: "Debian: lxc image import (split, squashfs)" },
  { id: "deb_create_first", label: "Debian: create (lxc init), first from a new image", target: 0.1 },
  { id: "deb_create_second", label: "Debian: create (lxc init), image used once", target: 0.1 },
  { id: "deb_launch_returned", label: "Debian: lxc launch returned" },
  { id: "deb_launch_systemd", label: "Debian: launch → systemd running", target: 0.5 },
];

if (opts.report) {
  printText(JSON.parse(readFileSync(opts.report, "utf8")));
  process.exit(0);
}

const bench = new Bench({ prefix: `sb${process.pid}`, tmpName: "lodge-stbench", opts });
const samples = {}; // metric id -> server key -> ms[]
const rec = (id, key, v) => (((samples[id] ??= {})[key] ??= []).push(v));
const notes = [];
const systemStates = {}; // server key -> { running: n, degraded: n, … } as is-system-running answered

// ---------------------------------------------------------------------------------------------
// Pools

const poolName = (driver) => `${bench.prefix}-${driver[0]}`;

async function createPools(server) {
  server.pools = {};
  for (const d of DRIVERS) {
    const name = poolName(d);
    const args = d === "btrfs" ? [`size=${opts.poolSize}`] : [];
    const r = must(await bench.lxc(server, ["storage", "create", name, d, ...args]), `${server.label}: storage create ${name} ${d}`);
    rec(`pool_create_${d}`, server.key, r.ms);
    const pool = (await http(server.socket, "GET", `/1.0/storage-pools/${name}`)).json?.metadata;
    server.pools[d] = name;
    log(`  ${server.label}: pool ${name} (${d}) on ${pool?.config?.source ?? "?"}`);
  }
}

/** Deletes the bench's pools on a server, with any volume still on them (cached images). */
async function deleteOurPools(server) {
  let ours = [];
  try {
    ours = await bench.listOurs(server, "storage-pools");
  } catch {
    return;
  }
  for (const p of ours) {
    const vols = (await http(server.socket, "GET", `/1.0/storage-pools/${p}/volumes`, undefined, 10000).catch(() => null))?.json?.metadata ?? [];
    for (const v of vols) {
      const m = /\/volumes\/([^/]+)\/([^/?]+)/.exec(v);
      if (m) await run("lxc", ["storage", "volume", "delete", p, `${m[1]}/${decodeURIComponent(m[2])}`], { env: server.env, timeoutMs: 60000 });
    }
    log(`cleaning up: deleting pool ${p} on ${server.label}`);
    for (let attempt = 1; ; attempt++) {
      const r = await run("lxc", ["storage", "delete", p], { env: server.env, timeoutMs: 120000 });
      if (r.code === 0) break;
      if (attempt === 3) {
        log(`  could not delete pool ${p} on ${server.label}: ${(r.stderr || r.stdout).trim()}`);
        break;
      }
      await sleep(2000 * attempt);
    }
  }
}

/** What a stopped lodged may leave under its directory: mounts of loop-backed pools, loop devices. */
async function releaseMountsAndLoops(dir) {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4]).filter((m) => m && (m === dir || m.startsWith(`${dir}/`)));
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    log(`cleaning up: umount ${m} (left by lodged)`);
    await run("umount", ["-l", m]);
  }
  const loops = JSON.parse((await run("losetup", ["-J", "-l"])).stdout || '{"loopdevices":[]}').loopdevices ?? [];
  for (const l of loops) {
    if (l["back-file"]?.startsWith(`${dir}/`)) {
      log(`cleaning up: losetup -d ${l.name} (${l["back-file"]})`);
      await run("losetup", ["-d", l.name]);
    }
  }
}

bench.cleanups.push(deleteOurPools);
bench.afterLodge.push(releaseMountsAndLoops);

// ---------------------------------------------------------------------------------------------
// Measurements

/** Polls `lxc exec NAME -- CMD…` until it exits 0; returns its stdout. */
async function execUntil(server, name, cmd, timeoutMs = EXEC_TIMEOUT_MS, accept = (r) => r.code === 0) {
  const t0 = performance.now();
  for (;;) {
    const r = await bench.lxc(server, ["exec", name, "--", ...cmd], Math.max(timeoutMs, 20000));
    if (accept(r)) return r.stdout;
    if (performance.now() - t0 > timeoutMs) must(r.code === 0 ? { ...r, code: "unaccepted" } : r, `${server.label}: exec ${cmd.join(" ")} in ${name} (gave up after ${timeoutMs / 1000} s)`);
    await sleep(10);
  }
}

/** lxc launch → first successful exec; returns ms. */
async function launchExecable(server, image, name, pool) {
  const t0 = performance.now();
  must(await bench.lxc(server, ["launch", image, name, ...server.profileArgs, "-s", pool]), `${server.label}: launch ${name} on ${pool}`);
  await execUntil(server, name, ["true"]);
  return performance.now() - t0;
}

const md5Of = async (server, name) => (await execUntil(server, name, ["md5sum", "/root/data"])).split(/\s/)[0];

/** The copy's (or import's) /root/data, started and read, against the original's md5. */
async function checkData(server, name, want) {
  must(await bench.lxc(server, ["start", name]), `${server.label}: start ${name}`);
  const got = await md5Of(server, name);
  if (got !== want) throw new Error(`${server.label}: /root/data of ${name} has md5 ${got}, the original ${want}`);
  must(await bench.lxc(server, ["stop", "--force", name]), `${server.label}: stop ${name}`);
}

async function poolRun(server, driver, i) {
  const pool = server.pools[driver];
  const x = bench.newName("x");
  const y = bench.newName("y");
  const file = join(bench.base, `${x}.tar.gz`);
  const timed = async (id, args) => rec(`${id}_${driver}`, server.key, must(await bench.lxc(server, args, 600000), `${server.label}: ${args.slice(0, 2).join(" ")}`).ms);
  await bench.sample(`${server.label} ${driver} run ${i}`, async () => {
    const ms = await launchExecable(server, server.image, x, pool);
    if (opts.only.has("launch")) rec(`launch_${driver}`, server.key, ms);
    if (!opts.only.has("data")) return;
    const bytes = opts.dataMiB * 1024 * 1024;
    const out = must(await bench.lxc(server, ["exec", x, "--", "sh", "-c", `head -c ${bytes} /dev/urandom > /root/data && sync && md5sum /root/data`]), `${server.label}: write ${opts.dataMiB} MiB`);
    const md5 = out.stdout.split(/\s/)[0];
    must(await bench.lxc(server, ["stop", "--force", x]), `${server.label}: stop ${x}`);
    await timed("snapshot", ["snapshot", x, "s0"]);
    // What a restore is for: the data is gone. (Restoring an unchanged instance would flatter
    // LXD's dir driver, whose restore is an rsync that copies only what differs.)
    must(await bench.lxc(server, ["file", "delete", `${x}/root/data`]), `${server.label}: file delete ${x}/root/data`);
    await timed("restore", ["restore", x, "s0"]);
    must(await bench.lxc(server, ["delete", `${x}/s0`]), `${server.label}: delete ${x}/s0`);
    await timed("copy", ["copy", x, y]);
    if (i === 0) await checkData(server, x, md5); // the restore brought it back
    if (i === 0) await checkData(server, y, md5);
    must(await bench.lxc(server, ["delete", "--force", y]), `${server.label}: delete ${y}`);
    await timed("export", ["export", x, file]);
    must(await bench.lxc(server, ["delete", "--force", x]), `${server.label}: delete ${x}`);
    await timed("import", ["import", file, "-s", pool]);
    rmSync(file, { force: true });
    if (i === 0) await checkData(server, x, md5);
  });
  rmSync(file, { force: true });
  for (const n of [x, y]) await bench.lxc(server, ["delete", "--force", n]);
}

/** A Debian image for the debian part: --debian-image DIR, or built now. */
async function debianImage() {
  if (opts.debianImage) {
    log(`Debian image from ${opts.debianImage}`);
    return imageIn(opts.debianImage, true);
  }
  return bench.buildImage("images/debian-bookworm.yaml", { split: true });
}

/** The answer of `systemctl is-system-running --wait` once it gives one (it exits non-zero when degraded). */
const SYSTEM_STATES = /^(running|degraded|maintenance|stopping)$/m;

async function debianRun(server, image, i) {
  const names = ["a", "b", "c"].map((k) => bench.newName(`d${k}`));
  const [first, second, booted] = names;
  await bench.sample(`${server.label} debian run ${i}`, async () => {
    if ((await http(server.socket, "GET", `/1.0/images/${image.fingerprint}`)).status === 200 && !server.importedImages?.has(image.fingerprint))
      throw new Error(`the Debian image ${image.fingerprint.slice(0, 12)} is already on ${server.label} and not the bench's: delete it to time a first create`);
    const imp = must(await bench.lxc(server, ["image", "import", ...image.files], 600000), `${server.label}: image import (Debian)`);
    (server.importedImages ??= new Set()).add(image.fingerprint);
    rec("deb_import", server.key, imp.ms);
    rec("deb_create_first", server.key, must(await bench.lxc(server, ["init", image.fingerprint, first, ...server.profileArgs], 600000), `${server.label}: init ${first}`).ms);
    rec("deb_create_second", server.key, must(await bench.lxc(server, ["init", image.fingerprint, second, ...server.profileArgs], 600000), `${server.label}: init ${second}`).ms);
    const t0 = performance.now();
    must(await bench.lxc(server, ["launch", image.fingerprint, booted, ...server.profileArgs], 600000), `${server.label}: launch ${booted}`);
    rec("deb_launch_returned", server.key, performance.now() - t0);
    const state = (await execUntil(server, booted, ["systemctl", "is-system-running", "--wait"], SYSTEMD_TIMEOUT_MS, (r) => SYSTEM_STATES.test(r.stdout))).trim();
    rec("deb_launch_systemd", server.key, performance.now() - t0);
    const seen = (systemStates[server.key] ??= {});
    seen[state] = (seen[state] ?? 0) + 1;
    log(`  ${server.label}: ${booted} says ${state} after ${fmtMs(performance.now() - t0)}`);
  });
  for (const n of names) await bench.lxc(server, ["delete", "--force", n]);
  if (server.importedImages?.has(image.fingerprint)) {
    must(await bench.lxc(server, ["image", "delete", image.fingerprint]), `${server.label}: image delete (Debian)`);
    server.importedImages.delete(image.fingerprint);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function printText(r) {
  const m = r.meta;
  const lines = [];
  lines.push(`Storage, Lodge vs LXD through the same lxc client (${m.lxcClient}), same driver on both sides; ${m.runs} runs; ${m.dataMiB} MiB of data; no NIC`);
  lines.push(fmtServers(m));
  lines.push(`pools: btrfs on a ${m.poolSize} loop file, dir; Debian on the default pool (${Object.entries(m.defaultPool ?? {}).map(([k, v]) => `${k} ${v}`).join(", ") || "–"})`);
  lines.push(fmtLoad(m));
  lines.push("");
  lines.push(table([COMPARE_HEADER, ...r.metrics.map((x) => compareRow(x))]));
  const states = Object.entries(r.systemStates ?? {});
  if (states.length) lines.push(`systemctl is-system-running answered: ${states.map(([k, v]) => `${k} ${Object.entries(v).map(([s, n]) => `${s} ×${n}`).join(", ")}`).join("; ")}`);
  for (const n of r.notes ?? []) lines.push(`note: ${n}`);
  lines.push(...errorLines(r.errors));
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  await bench.start();
  const servers = bench.servers;

  const defaultPool = {};
  for (const s of servers) {
    await bench.ensureRootDisk(s, { noNic: true });
    const prof = (await http(s.socket, "GET", `/1.0/profiles/${s.profileArgs.length ? s.profileArgs[1] : "default"}`)).json?.metadata;
    const root = Object.values(prof?.devices ?? {}).find((d) => d.type === "disk" && d.path === "/");
    const pool = (await http(s.socket, "GET", `/1.0/storage-pools/${root?.pool}`)).json?.metadata;
    defaultPool[s.key] = `${root?.pool} (${pool?.driver})`;
    if (pool?.driver !== "dir") notes.push(`${s.label}'s default pool ${root?.pool} is ${pool?.driver}, not dir: the Debian rows compare unlike drivers`);
  }

  if (opts.only.has("launch") || opts.only.has("data")) {
    const busybox = await bench.buildImage("images/busybox.yaml");
    for (const s of servers) {
      await bench.importImage(s, busybox);
      await createPools(s);
      for (const d of DRIVERS) {
        log(`${s.label} (${s.version}): warm-up launch on ${s.pools[d]}`);
        const w = bench.newName("w");
        await launchExecable(s, s.image, w, s.pools[d]);
        const devs = (await http(s.socket, "GET", `/1.0/instances/${w}`)).json?.metadata?.expanded_devices ?? {};
        const nics = Object.keys(devs).filter((k) => devs[k].type === "nic");
        if (nics.length) throw new Error(`${s.label}: instances get a NIC (${nics.join(", ")}); the bench needs none`);
        must(await bench.lxc(s, ["delete", "--force", w]), "delete warm-up");
      }
    }
    for (let i = 0; i < opts.runs; i++) {
      for (const d of DRIVERS) {
        log(`${[...opts.only].filter((p) => p !== "debian").join("+")} on ${d}: run ${i + 1}/${opts.runs}`);
        for (const s of servers) await poolRun(s, d, i);
      }
    }
  }

  if (opts.only.has("debian")) {
    const image = await debianImage();
    for (let i = 0; i < opts.runs; i++) {
      log(`debian: run ${i + 1}/${opts.runs}`);
      for (const s of servers) await debianRun(s, image, i);
    }
  }

  const meta = bench.meta({ only: [...opts.only], dataMiB: opts.dataMiB, poolSize: opts.poolSize, defaultPool });
  return { meta, metrics: compare(METRICS, samples), systemStates, notes, errors: bench.errors };
}

await bench.main(main, { json: opts.json, print: printText });
