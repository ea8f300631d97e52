#!/usr/bin/env node
// Managed networks, Lodge vs LXD side by side through the same real `lxc` client: network create
// and delete time, and launch → IPv4 address shown in `lxc list`. Not a test: the numbers depend
// on the machine and its load (the load average is printed with them). Needs root, liblxc,
// dnsmasq, the `lxc` client (Debian's lxd-client) and, for the LXD side, Debian's `lxd` package
// (apt-get install -y lxd).
//
//   node bench/networks.mjs [options]
//
//   --runs N           runs per timed operation (default 10)
//   --lodge-dir DIR    use the lodged already serving DIR/unix.socket (default: start one on a
//                      temporary directory, building dist/ with `npm run build` if missing)
//   --lxd-socket PATH  use the LXD at PATH (default /var/lib/lxd/unix.socket; when nothing answers
//                      there and `lxd` is installed, the bench starts LXD itself, gives it a `dir`
//                      pool if it has none, and stops it at the end)
//   --no-lxd           Lodge alone
//   --lxd-auto         also time LXD's `ipv4.address=auto`. Off by default because LXD 5.0.2 probes
//                      each candidate subnet from the host (ping and a TCP connect to port 22 of
//                      its .1 and .254, up to 1 s each, through the default route): that traffic
//                      leaves the bench's bridges. Lodge decides from the host's tables and sends
//                      nothing, so its auto create is always timed.
//   --subnets CIDR     IPv4 range the given subnets (/24s) are taken from (default 198.18.0.0/15,
//                      RFC 2544's benchmarking range); /24s that overlap a host route or address
//                      are skipped
//   --only LIST        comma-separated parts: create,launch (default: both)
//   --json             print the results as JSON on stdout (progress always goes to stderr)
//   --report FILE      print the table of a JSON result saved earlier, run nothing
//
// What it times, interleaving the servers run by run:
//   create    `lxc network create NAME ipv4.address=198.18.X.1/24 ipv4.nat=true ipv6.address=none`
//             (a distinct /24 for every network of either server), then `lxc network delete NAME`;
//             and `lxc network create NAME ipv4.address=auto ipv4.nat=true ipv6.address=none`
//             (LXD only with --lxd-auto), deleted untimed. ipv4.nat is given because LXD sets it
//             by default only for auto subnets.
//   launch    on one network per server (given subnet, made before the runs): `lxc launch IMAGE
//             NAME --network NET` of the busybox image (its rcS runs udhcpc on eth0), then
//             `lxc list NAME --format csv -c 4` every 50 ms until an IPv4 on eth0 shows; records
//             the time until `lxc launch` returned and until the address showed. One untimed
//             warm-up launch per server first.
// Medians and p90 (linear interpolation) per metric and the Lodge/LXD ratio.
//
// Everything it creates is named nb<pid>-… and removed at the end, also on failure or Ctrl-C (a
// second Ctrl-C gives up cleaning): instances and networks (found by prefix through the API), the
// image and profile it imported or created, its own lodged (plus any liblxc container left under
// it) and temporary directory, and LXD if it started it (unless instances that are not the
// bench's appeared there meanwhile: then LXD is left running and the bench says so). LXD's own
// initialisation (the `default` dir pool and root disk) is kept. All container traffic stays on
// the bench's own bridges (no ping, no outside address is used; NAT is configured but unused).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseOptions } from "./lib/options.mjs";
import { http, run, sleep } from "./lib/run.mjs";
import { Bench, log, must } from "./lib/servers.mjs";
import { COMPARE_HEADER, compare, compareRow, errorLines, fmtLoad, fmtServers, fmtMs, table } from "./lib/stats.mjs";

const PARTS = ["create", "launch"];
const POLL_MS = 50;
const LEASE_TIMEOUT_MS = 60000;

// ---------------------------------------------------------------------------------------------
// Options

const opts = parseOptions(process.argv.slice(2), {
  script: "networks.mjs",
  usage:
    "node bench/networks.mjs [--runs N] [--lodge-dir DIR] [--lxd-socket PATH] [--no-lxd] [--lxd-auto]\n" +
    "                               [--subnets CIDR] [--only create,launch] [--json] [--report FILE]",
  parts: PARTS,
  defaults: { lxdAuto: false, subnets: "198.18.0.0/15" },
  flags: {
    "--lxd-auto": (o) => (o.lxdAuto = true),
    "--subnets": (o, v) => (o.subnets = v()),
  },
});
if (opts.report) {
  printText(JSON.parse(readFileSync(opts.report, "utf8")));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// IPv4 subnets: distinct /24s from --subnets that overlap nothing the host has

const ip2n = (s) => s.split(".").reduce((a, b) => a * 256 + Number(b), 0);
const n2ip = (n) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

function parseCidr(s) {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(s);
  if (!m || Number(m[2]) > 24) throw new Error(`--subnets needs an IPv4 CIDR of /24 or wider, got ${s}`);
  const size = 2 ** (32 - Number(m[2]));
  const base = Math.floor(ip2n(m[1]) / size) * size;
  return { base, size };
}

/** [start, end) ranges the host already uses: every route of every table, every address's subnet. */
async function hostRanges() {
  const out = [];
  const add = (dst, len) => {
    const size = 2 ** (32 - len);
    const base = Math.floor(ip2n(dst) / size) * size;
    out.push([base, base + size, `${dst}/${len}`]);
  };
  const routes = JSON.parse((await run("ip", ["-4", "-j", "route", "show", "table", "all"])).stdout || "[]");
  for (const r of routes) {
    if (!r.dst || r.dst === "default") continue;
    const [dst, len] = r.dst.split("/");
    if (/^\d+\.\d+\.\d+\.\d+$/.test(dst)) add(dst, Number(len ?? 32));
  }
  const addrs = JSON.parse((await run("ip", ["-4", "-j", "addr"])).stdout || "[]");
  for (const l of addrs) for (const a of l.addr_info ?? []) if (a.family === "inet") add(a.local, a.prefixlen);
  return out;
}

let subnetPool = null;
/** The next free /24 of --subnets as the bridge's "A.B.C.1/24"; rechecked against the host each time. */
async function nextSubnet() {
  subnetPool ??= { ...parseCidr(opts.subnets), next: 0 };
  const taken = await hostRanges();
  while (subnetPool.next < subnetPool.size) {
    const start = subnetPool.base + subnetPool.next;
    subnetPool.next += 256;
    if (!taken.some(([a, b]) => start < b && a < start + 256)) return `${n2ip(start + 1)}/24`;
  }
  throw new Error(`no free /24 left in ${opts.subnets}`);
}


// ---------------------------------------------------------------------------------------------
// State shared with the clean-up

// Names ≤ 15 characters: network names are interface names.
const bench = new Bench({ prefix: `nb${process.pid}`, tmpName: "lodge-netbench", opts });
const PREFIX = bench.prefix;
const newName = (kind) => bench.newName(kind);
const lxc = (server, args, timeoutMs) => bench.lxc(server, args, timeoutMs);
const sample = (what, fn) => bench.sample(what, fn);
const notes = [];

/** A root disk for instances, and the image on the server. */
async function prepare(server, image) {
  await bench.ensureRootDisk(server);
  await bench.importImage(server, image);
}


// ---------------------------------------------------------------------------------------------
// Measurements

const samples = {}; // metric id -> server key -> ms[]
const rec = (id, key, v) => (((samples[id] ??= {})[key] ??= []).push(v));

const IPV4_ETH0 = /(\d+\.\d+\.\d+\.\d+) \(eth0\)/;

/** Network create, timed; the caller deletes. */
async function createNet(server, name, address) {
  (server.netsAsked ??= new Set()).add(name); // for the clean-up, should it come while this is in flight
  return must(await lxc(server, ["network", "create", name, `ipv4.address=${address}`, "ipv4.nat=true", "ipv6.address=none"]), `${server.label}: network create ${name} ${address}`).ms;
}

async function createRun(server, i) {
  await sample(`${server.label} create run ${i}`, async () => {
    const n = newName("g");
    const subnet = await nextSubnet();
    rec("create_given", server.key, await createNet(server, n, subnet));
    rec("delete", server.key, must(await lxc(server, ["network", "delete", n]), `${server.label}: network delete ${n}`).ms);
  });
  if (server.key === "lxd" && !opts.lxdAuto) return;
  await sample(`${server.label} create auto run ${i}`, async () => {
    const n = newName("a");
    rec("create_auto", server.key, await createNet(server, n, "auto"));
    const got = (await http(server.socket, "GET", `/1.0/networks/${n}`)).json?.metadata?.config?.["ipv4.address"];
    if (i === 0) log(`  ${server.label}: auto picked ${got}`);
    must(await lxc(server, ["network", "delete", n]), `${server.label}: network delete ${n}`);
  });
}

/** launch --network → first `lxc list` showing an IPv4 on eth0; returns { launched, leased, ip }. */
async function launchToAddress(server, name) {
  const t0 = performance.now();
  must(await lxc(server, ["launch", server.image, name, ...server.profileArgs, "--network", server.net.name]), `${server.label}: launch ${name}`);
  const launched = performance.now() - t0;
  for (;;) {
    const r = must(await lxc(server, ["list", name, "--format", "csv", "-c", "4"]), `${server.label}: list ${name}`);
    const ip = IPV4_ETH0.exec(r.stdout)?.[1];
    if (ip) {
      const leased = performance.now() - t0;
      const prefix = server.net.subnet.split(".").slice(0, 3).join(".") + ".";
      if (!ip.startsWith(prefix)) throw new Error(`${name} got ${ip}, outside ${server.net.subnet}`);
      return { launched, leased, ip };
    }
    if (performance.now() - t0 > LEASE_TIMEOUT_MS) throw new Error(`${name}: no IPv4 on eth0 in lxc list after ${LEASE_TIMEOUT_MS / 1000} s (last: ${JSON.stringify(r.stdout.trim())})`);
    await sleep(POLL_MS);
  }
}

async function launchRun(server, i, { warmUp = false } = {}) {
  const n = newName(warmUp ? "w" : "l");
  await sample(`${server.label} launch ${warmUp ? "warm-up" : `run ${i}`}`, async () => {
    const r = await launchToAddress(server, n);
    if (warmUp) {
      log(`  ${server.label}: warm-up ${n} got ${r.ip} after ${fmtMs(r.leased)}`);
      return;
    }
    rec("launch_returned", server.key, r.launched);
    rec("launch_ipv4", server.key, r.leased);
  });
  await lxc(server, ["delete", "--force", n]);
}

// ---------------------------------------------------------------------------------------------
// Clean-up

/** Our managed networks (the other server's bridges show up here too, as unmanaged interfaces). */
async function listOurNetworks(server) {
  const r = await http(server.socket, "GET", "/1.0/networks?recursion=1", undefined, 10000);
  return (r.json?.metadata ?? []).filter((n) => n.managed && n.name?.startsWith(`${PREFIX}-`)).map((n) => n.name);
}

/** Deletes the bench's networks on a server (after its instances). */
async function deleteOurNetworks(server) {
  // A create whose client was killed may still be under way on the server: wait until every
  // network the bench asked for is either there (then delete it) or plainly not found.
  const asked = server.netsAsked ?? new Set();
  for (let attempt = 0; attempt < 5; attempt++) {
    let ours;
    try {
      ours = await listOurNetworks(server);
    } catch {
      return;
    }
    if (ours.length > 0) {
      log(`cleaning up: deleting network(s) ${ours.join(", ")} on ${server.label}`);
      for (const n of ours) await run("lxc", ["network", "delete", n], { env: server.env, timeoutMs: 60000 });
    }
    const left = [];
    for (const n of asked) {
      const r = await http(server.socket, "GET", `/1.0/networks/${n}`, undefined, 10000).catch(() => null);
      if (r?.status !== 404) left.push(n);
    }
    if (left.length === 0) return;
    await sleep(500 * (attempt + 1));
  }
}

/** What the bench's own lodged may leave of its networks once stopped: dnsmasq, nft table, bridge. */
async function sweepLodgeNetworks(lodgeDir) {
  const runDir = join(lodgeDir, "networks");
  let names = [];
  try {
    names = readdirSync(runDir).filter((n) => n.startsWith(`${PREFIX}-`));
  } catch {
    return;
  }
  for (const n of names) {
    log(`cleaning up: removing what lodged left of network ${n} on the host`);
    try {
      const pid = Number(readFileSync(join(runDir, n, "dnsmasq.pid"), "utf8").trim());
      if (pid > 1 && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(join(runDir, n, "dnsmasq.conf"))) process.kill(pid, "SIGTERM");
    } catch {
      /* no dnsmasq of this network runs */
    }
    await run("nft", ["delete", "table", "inet", `lodge-${n}`]);
    await run("ip", ["link", "delete", n, "type", "bridge"]);
  }
}

bench.cleanups.push(deleteOurNetworks);
bench.afterLodge.push(sweepLodgeNetworks);

// ---------------------------------------------------------------------------------------------
// Report

const METRICS = [
  { id: "create_given", label: "network create, given /24 (ipv4.nat=true, ipv6 none)" },
  { id: "create_auto", label: "network create, ipv4.address=auto" },
  { id: "delete", label: "network delete (unused)" },
  { id: "launch_returned", label: "launch --network: lxc launch returned" },
  { id: "launch_ipv4", label: "launch --network → IPv4 in lxc list" },
];

function report(meta) {
  const out = { meta, metrics: compare(METRICS, samples), errors: bench.errors, notes };
  return out;
}

function printText(r) {
  const m = r.meta;
  const lines = [];
  lines.push(`Managed networks, Lodge vs LXD through the same lxc client (${m.lxcClient}); ${m.runs} runs; busybox image (udhcpc)`);
  lines.push(fmtServers(m));
  lines.push(`given subnets from ${m.subnets}; networks used for launches: ${Object.entries(m.launchNets ?? {}).map(([k, v]) => `${k} ${v}`).join(", ") || "–"}`);
  lines.push(fmtLoad(m));
  lines.push("");
  const rows = [COMPARE_HEADER.slice(0, 6), ...r.metrics.map((x) => compareRow(x, false))];
  lines.push(table(rows));
  for (const n of r.notes ?? []) lines.push(`note: ${n}`);
  lines.push(...errorLines(r.errors));
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const { lxd } = await bench.start();
  const image = await bench.buildImage("images/busybox.yaml");
  for (const s of bench.servers) await prepare(s, image);

  // Can LXD make networks here? One untimed try, so that a failure is reported once, clearly.
  if (lxd) {
    const probe = newName("t");
    (lxd.netsAsked ??= new Set()).add(probe);
    const r = await lxc(lxd, ["network", "create", probe, `ipv4.address=${await nextSubnet()}`, "ipv4.nat=true", "ipv6.address=none"]);
    if (r.code !== 0) {
      bench.lxdMissing = `LXD cannot create a bridge network here: ${(r.stderr || r.stdout).trim()}`;
      log(`${bench.lxdMissing}; Lodge alone`);
      await bench.cleanServer(lxd);
      bench.servers.splice(bench.servers.indexOf(lxd), 1);
    } else must(await lxc(lxd, ["network", "delete", probe]), "LXD: network delete (probe)");
  }
  if (lxd && !opts.lxdAuto && bench.servers.includes(lxd))
    notes.push("LXD's ipv4.address=auto is not timed: it probes candidate subnets from the host (ping and TCP :22 of .1 and .254, 1 s timeout) through the default route; --lxd-auto times it");
  const servers = bench.servers;

  if (opts.only.has("create")) {
    for (let i = 0; i < opts.runs; i++) {
      log(`create/delete: run ${i + 1}/${opts.runs}`);
      for (const s of servers) await createRun(s, i);
    }
  }
  const launchNets = {};
  if (opts.only.has("launch")) {
    for (const s of servers) {
      const subnet = await nextSubnet();
      s.net = { name: newName("n"), subnet };
      await createNet(s, s.net.name, subnet);
      launchNets[s.key] = `${s.net.name} ${subnet}`;
      log(`${s.label} (${s.version}): network ${s.net.name} on ${subnet}; warm-up launch`);
      await launchRun(s, 0, { warmUp: true });
    }
    for (let i = 0; i < opts.runs; i++) {
      log(`launch → IPv4: run ${i + 1}/${opts.runs}`);
      for (const s of servers) await launchRun(s, i);
    }
  }

  return report(bench.meta({
    lxdAuto: opts.lxdAuto,
    subnets: opts.subnets,
    launchNets,
    image: image.fingerprint,
  }));
}

await bench.main(main, { json: opts.json, print: printText });
