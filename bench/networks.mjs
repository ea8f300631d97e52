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
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { socketOwner } from "./lib/proc.mjs";
import { answers, http, run, running, sleep } from "./lib/run.mjs";
import { fmtMs, summary, table } from "./lib/stats.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LODGE_CLI = join(root, "dist/lodge.js");
const LODGED = join(root, "dist/lodged.js");
const DEFAULT_LXD_SOCKET = "/var/lib/lxd/unix.socket";
const PARTS = ["create", "launch"];
const POLL_MS = 50;
const LEASE_TIMEOUT_MS = 60000;

// ---------------------------------------------------------------------------------------------
// Options

function usage(msg) {
  if (msg) console.error(`networks.mjs: ${msg}`);
  console.error(
    "usage: node bench/networks.mjs [--runs N] [--lodge-dir DIR] [--lxd-socket PATH] [--no-lxd] [--lxd-auto]\n" +
      "                               [--subnets CIDR] [--only create,launch] [--json] [--report FILE]",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { runs: 10, lodgeDir: null, lxdSocket: null, noLxd: false, lxdAuto: false, subnets: "198.18.0.0/15", json: false, only: new Set(PARTS) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const val = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    switch (flag) {
      case "--runs": {
        const v = val();
        o.runs = Number(v);
        if (!Number.isInteger(o.runs) || o.runs < 1) usage(`--runs needs a whole number ≥ 1, got ${v}`);
        break;
      }
      case "--lodge-dir": o.lodgeDir = resolve(val()); break;
      case "--lxd-socket": o.lxdSocket = resolve(val()); break;
      case "--no-lxd": o.noLxd = true; break;
      case "--lxd-auto": o.lxdAuto = true; break;
      case "--subnets": o.subnets = val(); break;
      case "--json": o.json = true; break;
      case "--report": o.report = resolve(val()); break;
      case "--only": {
        o.only = new Set(val().split(",").map((s) => s.trim()).filter(Boolean));
        for (const p of o.only) if (!PARTS.includes(p)) usage(`unknown part ${p} (one of ${PARTS.join(", ")})`);
        break;
      }
      case "-h": case "--help": usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
if (opts.report) {
  printText(JSON.parse(readFileSync(opts.report, "utf8")));
  process.exit(0);
}
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

// ---------------------------------------------------------------------------------------------
// IPv4 subnets: distinct /24s from --subnets that overlap nothing the host has

const ip2n = (s) => s.split(".").reduce((a, b) => a * 256 + Number(b), 0);
const n2ip = (n) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

function parseCidr(s) {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(s);
  if (!m || Number(m[2]) > 24) usage(`--subnets needs an IPv4 CIDR of /24 or wider, got ${s}`);
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

const PREFIX = `nb${process.pid}`;
const base = mkdtempSync(join(tmpdir(), "lodge-netbench-"));
chmodSync(base, 0o711); // an unprivileged container's root must be able to reach its rootfs below
const lxcConf = join(base, "lxc-conf");
mkdirSync(lxcConf);
const st = {
  servers: [], // { key, label, socket, env, image, profileArgs, importedImage, createdProfile, version, net }
  lodgeChild: null,
  lodgeDir: null,
  lxdChild: null, // set when this bench started LXD
  lxdMissing: null,
  aborted: false,
  cleaning: null,
};
let seq = 0;
const newName = (kind) => `${PREFIX}-${kind}${seq++}`; // ≤ 15 characters: network names are interface names
const errors = [];
const notes = [];

function lxcEnv(socket) {
  const env = { ...process.env, LXD_SOCKET: socket, LXD_CONF: lxcConf };
  delete env.LXD_DIR;
  return env;
}

async function lxc(server, args, timeoutMs = 180000) {
  if (st.aborted) throw new Error("interrupted");
  return run("lxc", args, { env: server.env, timeoutMs });
}

function must(r, what) {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
  return r;
}

/** Records the error of one sample and goes on (the clean-up catches what it left behind). */
async function sample(what, fn) {
  try {
    await fn();
  } catch (e) {
    if (st.aborted) throw e;
    errors.push(`${what}: ${e.message}`);
    log(`  ! ${what}: ${e.message}`);
  }
}

async function waitFor(cond, timeoutMs, what) {
  const t0 = performance.now();
  for (let d = 10; ; d = Math.min(d * 2, 200)) {
    if (await cond()) return;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(d);
  }
}

function tail(path, lines = 5) {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

async function ensureBuilt() {
  if (existsSync(LODGED) && existsSync(LODGE_CLI)) return;
  log("dist/ is missing: npm run build");
  must(await run("npm", ["run", "build"], { env: process.env }), "npm run build");
}

async function startLodge() {
  let dir = opts.lodgeDir;
  if (!dir) {
    dir = join(base, "lodge");
    const out = join(base, "lodged.out");
    const fd = openSync(out, "a");
    log(`starting lodged on ${dir}`);
    // Its own process group: a Ctrl-C must not kill it before its instances and networks are gone.
    st.lodgeChild = spawn(process.execPath, [LODGED, "--dir", dir], { detached: true, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    let exited = null;
    st.lodgeChild.on("exit", (code, sig) => (exited = code ?? sig));
    await waitFor(async () => exited !== null || (existsSync(join(dir, "unix.socket")) && (await answers(join(dir, "unix.socket")))), 30000, "lodged's socket");
    if (exited !== null) throw new Error(`lodged exited (${exited}):\n${tail(out, 10)}`);
  }
  const socket = join(dir, "unix.socket");
  if (!(await answers(socket))) throw new Error(`no lodged answers on ${socket}`);
  st.lodgeDir = dir;
  return { key: "lodge", label: "Lodge", socket, daemonPid: st.lodgeChild?.pid ?? socketOwner(socket) };
}

async function startLxd() {
  if (opts.noLxd) {
    st.lxdMissing = "--no-lxd given";
    return null;
  }
  const socket = opts.lxdSocket ?? DEFAULT_LXD_SOCKET;
  if (await answers(socket)) return { key: "lxd", label: "LXD", socket };
  if (opts.lxdSocket) {
    st.lxdMissing = `nothing answers on --lxd-socket ${socket}`;
    return null;
  }
  if ((await run("sh", ["-c", "command -v lxd"])).code !== 0) {
    st.lxdMissing = `the lxd daemon is not installed (apt-get install -y lxd) and nothing answers on ${socket}`;
    return null;
  }
  const lxdLog = join(base, "lxd.log");
  const lxdDir = dirname(socket);
  log("starting LXD (lxd --group root), it will be stopped at the end");
  const fd = openSync(join(base, "lxd.out"), "a");
  st.lxdChild = spawn("lxd", ["--group", "root", "--logfile", lxdLog], { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, LXD_DIR: lxdDir } });
  closeSync(fd);
  let exited = null;
  st.lxdChild.on("exit", (code, sig) => (exited = code ?? sig));
  try {
    await waitFor(async () => exited !== null || (await answers(socket)), 60000, "LXD's socket");
  } catch (e) {
    st.lxdMissing = `LXD did not come up: ${e.message}`;
    return null;
  }
  if (exited !== null) {
    st.lxdChild = null;
    st.lxdMissing = `lxd exited (${exited}): ${tail(join(base, "lxd.out"))} ${tail(lxdLog)}`;
    return null;
  }
  const ready = await run("lxd", ["waitready", "--timeout=60"], { env: { ...process.env, LXD_DIR: lxdDir } });
  if (ready.code !== 0) {
    st.lxdMissing = `lxd waitready failed: ${ready.stderr.trim()}`;
    return null;
  }
  return { key: "lxd", label: "LXD", socket };
}

/** Storage and a root disk for LXD (a `dir` pool when it has none), the image on both. */
async function prepare(server, imageFile, fingerprint) {
  server.env = lxcEnv(server.socket);
  const info = await http(server.socket, "GET", "/1.0");
  const env = info.json?.metadata?.environment ?? {};
  server.version = `${env.server ?? "?"} ${env.server_version ?? "?"}`;
  server.profileArgs = [];
  if (server.key === "lxd") {
    const pools = (await http(server.socket, "GET", "/1.0/storage-pools")).json?.metadata ?? [];
    if (pools.length === 0) {
      if (!st.lxdChild) throw new Error(`LXD at ${server.socket} has no storage pool (run lxd init)`);
      log("LXD: no storage pool, creating `default` (dir)");
      must(await lxc(server, ["storage", "create", "default", "dir"]), "lxc storage create");
      pools.push("/1.0/storage-pools/default");
    }
    const devices = (await http(server.socket, "GET", "/1.0/profiles/default")).json?.metadata?.devices ?? {};
    if (!Object.values(devices).some((d) => d.type === "disk" && d.path === "/")) {
      if (st.lxdChild) {
        log("LXD: adding a root disk to the default profile");
        must(await lxc(server, ["profile", "device", "add", "default", "root", "disk", "path=/", "pool=default"]), "lxc profile device add");
      } else {
        // Not our LXD: leave its default profile alone and launch with a root-disk profile of our own.
        const name = `${PREFIX}-root`;
        must(await lxc(server, ["profile", "create", name]), "lxc profile create");
        server.createdProfile = name;
        must(await lxc(server, ["profile", "device", "add", name, "root", "disk", "path=/", `pool=${pools[0].split("/").pop()}`]), "lxc profile device add");
        server.profileArgs = ["-p", "default", "-p", name];
      }
    }
  }
  const img = await http(server.socket, "GET", `/1.0/images/${fingerprint}`);
  if (img.status === 200) {
    log(`${server.label}: image ${fingerprint.slice(0, 12)} already there, reusing it`);
  } else {
    must(await lxc(server, ["image", "import", imageFile]), `${server.label}: lxc image import`);
    server.importedImage = true;
  }
  server.image = fingerprint;
}

async function buildImage() {
  const out = join(base, "image");
  mkdirSync(out);
  log("building images/busybox.yaml");
  const r = await run(process.execPath, [LODGE_CLI, "image", "build", join(root, "images/busybox.yaml"), "-o", out], {
    env: { ...process.env, LODGE_DIR: st.lodgeDir },
  });
  must(r, "lodge image build");
  const files = readdirSync(out).filter((f) => /\.tar(\.xz|\.gz)?$/.test(f));
  if (files.length !== 1) throw new Error(`expected one image tarball in ${out}, found: ${readdirSync(out).join(", ")}`);
  const file = join(out, files[0]);
  return { file, fingerprint: createHash("sha256").update(readFileSync(file)).digest("hex") };
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

const nameOf = (u) => decodeURIComponent(String(u).split("/").pop().split("?")[0]);

async function listOurs(server, what) {
  const r = await http(server.socket, "GET", `/1.0/${what}`, undefined, 10000);
  return (r.json?.metadata ?? []).map(nameOf).filter((n) => n.startsWith(`${PREFIX}-`));
}

/** Our managed networks (the other server's bridges show up here too, as unmanaged interfaces). */
async function listOurNetworks(server) {
  const r = await http(server.socket, "GET", "/1.0/networks?recursion=1", undefined, 10000);
  return (r.json?.metadata ?? []).filter((n) => n.managed && n.name?.startsWith(`${PREFIX}-`)).map((n) => n.name);
}

async function deleteOurs(server) {
  for (let attempt = 0; attempt < 5; attempt++) {
    let ours;
    try {
      ours = await listOurs(server, "instances");
    } catch {
      return;
    }
    if (ours.length === 0) break;
    log(`cleaning up: deleting ${ours.length} instance(s) on ${server.label}`);
    await Promise.all(ours.map((n) => run("lxc", ["delete", "--force", n], { env: server.env, timeoutMs: 120000 })));
    await sleep(500 * attempt);
  }
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

async function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((r) => {
    const t = setTimeout(() => r(false), ms);
    child.once("exit", () => {
      clearTimeout(t);
      r(true);
    });
  });
}

async function doCleanup() {
  st.aborted = true; // nothing new starts from here on
  for (const c of running) c.kill("SIGKILL"); // clients in flight; their server-side operations finish
  for (const s of st.servers) {
    if (!s.env) continue;
    try {
      await deleteOurs(s);
      if (s.importedImage) await run("lxc", ["image", "delete", s.image], { env: s.env, timeoutMs: 60000 });
      if (s.createdProfile) await run("lxc", ["profile", "delete", s.createdProfile], { env: s.env, timeoutMs: 60000 });
    } catch (e) {
      log(`clean-up on ${s.label}: ${e.message}`);
    }
  }
  if (st.lodgeChild) {
    st.lodgeChild.kill("SIGTERM");
    if (!(await waitExit(st.lodgeChild, 10000))) st.lodgeChild.kill("SIGKILL");
    const lxcpath = join(st.lodgeDir, "containers");
    const ls = await run("lxc-ls", ["-P", lxcpath, "--running"]);
    for (const n of ls.stdout.split(/\s+/).filter(Boolean)) {
      log(`cleaning up: lxc-stop -k ${n} (left by lodged)`);
      await run("lxc-stop", ["-k", "-P", lxcpath, "-n", n], { timeoutMs: 30000 });
    }
    await sweepLodgeNetworks(st.lodgeDir);
  }
  if (st.lxdChild) {
    const lxd = st.servers.find((s) => s.key === "lxd");
    const others = lxd ? ((await http(lxd.socket, "GET", "/1.0/instances").catch(() => null))?.json?.metadata ?? []) : [];
    if (others.length) {
      log(`leaving the LXD this bench started running: it now has ${others.length} instance(s) that are not the bench's (stop it with: LXD_DIR=${dirname(opts.lxdSocket ?? DEFAULT_LXD_SOCKET)} lxd shutdown)`);
    } else {
      log("stopping the LXD this bench started");
      const lxdDir = dirname(opts.lxdSocket ?? DEFAULT_LXD_SOCKET);
      await run("lxd", ["shutdown", "--timeout=60"], { env: { ...process.env, LXD_DIR: lxdDir }, timeoutMs: 70000 });
      if (!(await waitExit(st.lxdChild, 10000))) st.lxdChild.kill("SIGKILL");
    }
  }
  try {
    rmSync(base, { recursive: true, force: true });
  } catch (e) {
    log(`could not remove ${base}: ${e.message}`);
  }
}

function cleanup() {
  st.cleaning ??= doCleanup();
  return st.cleaning;
}

let interrupts = 0;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (++interrupts > 1) {
      log(`${sig} again: giving up the clean-up (check for instances and networks named ${PREFIX}-* and ${base})`);
      process.exit(130);
    }
    log(`${sig}: cleaning up (send it again to give up)`);
    cleanup().finally(() => process.exit(130));
  });
}
process.on("unhandledRejection", (e) => {
  log(`unexpected: ${e?.stack ?? e}`);
  cleanup().finally(() => process.exit(1));
});

// ---------------------------------------------------------------------------------------------
// Report

const METRICS = [
  { id: "create_given", label: "network create, given /24 (ipv4.nat=true, ipv6 none)" },
  { id: "create_auto", label: "network create, ipv4.address=auto" },
  { id: "delete", label: "network delete (unused)" },
  { id: "launch_returned", label: "launch --network: lxc launch returned" },
  { id: "launch_ipv4", label: "launch --network → IPv4 in lxc list" },
];

function loadavg() {
  const [l1, l5, l15] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return { l1, l5, l15, cpus: cpus().length };
}

function report(meta) {
  const out = { meta, metrics: [], errors, notes };
  for (const m of METRICS) {
    const s = samples[m.id];
    if (!s) continue;
    const lodge = s.lodge ? summary(s.lodge) : null;
    const lxd = s.lxd ? summary(s.lxd) : null;
    out.metrics.push({ ...m, lodge: lodge && { ...lodge, samples: s.lodge }, lxd: lxd && { ...lxd, samples: s.lxd }, ratio: lodge && lxd ? lodge.median / lxd.median : null });
  }
  return out;
}

function printText(r) {
  const m = r.meta;
  const lines = [];
  lines.push(`Managed networks, Lodge vs LXD through the same lxc client (${m.lxcClient}); ${m.runs} runs; busybox image (udhcpc)`);
  lines.push(`Lodge: ${m.lodge}${m.lxd ? `   LXD: ${m.lxd}` : `   LXD: missing (${m.lxdMissing})`}`);
  lines.push(`given subnets from ${m.subnets}; networks used for launches: ${Object.entries(m.launchNets ?? {}).map(([k, v]) => `${k} ${v}`).join(", ") || "–"}`);
  lines.push(`load average at start ${m.loadStart.l1} ${m.loadStart.l5} ${m.loadStart.l15}, at end ${m.loadEnd.l1} ${m.loadEnd.l5} ${m.loadEnd.l15} (${m.loadStart.cpus} CPUs)${m.loadDuring ? `; 1-min load during: mean ${m.loadDuring.mean.toFixed(1)}, max ${m.loadDuring.max}` : ""}${m.loadHigh ? "  — HIGH at start: numbers are noisy, run again" : ""}`);
  lines.push("");
  const rows = [["metric", "Lodge median", "p90", "LXD median", "p90", "Lodge/LXD"]];
  for (const x of r.metrics) rows.push([x.label, fmtMs(x.lodge?.median), fmtMs(x.lodge?.p90), fmtMs(x.lxd?.median), fmtMs(x.lxd?.p90), x.ratio == null ? "–" : `${x.ratio.toFixed(2)}×`]);
  lines.push(table(rows));
  for (const n of r.notes ?? []) lines.push(`note: ${n}`);
  if (r.errors.length) {
    lines.push("");
    lines.push(`errors (${r.errors.length}):`);
    for (const e of r.errors) lines.push(`  ${e}`);
  }
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const loadStart = loadavg();
  const loadSamples = [loadStart.l1];
  const sampler = setInterval(() => loadSamples.push(loadavg().l1), 5000);
  sampler.unref();
  if (loadStart.l1 > loadStart.cpus * 0.75) log(`note: load average ${loadStart.l1} on ${loadStart.cpus} CPUs, numbers will be noisy`);
  const client = await run("lxc", ["version"], { env: lxcEnv("/nonexistent") });
  if (client.code === null || /ENOENT/.test(client.stderr)) throw new Error("the lxc client is missing (apt-get install -y lxd-client)");
  const lxcClient = /Client version:\s*(\S+)/.exec(client.stdout + client.stderr)?.[1] ?? "?";

  await ensureBuilt();
  const lodge = await startLodge();
  st.servers.push(lodge);
  const lxd = await startLxd();
  if (lxd) st.servers.push(lxd);
  else log(`LXD is missing: ${st.lxdMissing}; Lodge alone`);

  const { file, fingerprint } = await buildImage();
  for (const s of st.servers) await prepare(s, file, fingerprint);

  // Can LXD make networks here? One untimed try, so that a failure is reported once, clearly.
  if (lxd) {
    const probe = newName("t");
    (lxd.netsAsked ??= new Set()).add(probe);
    const r = await lxc(lxd, ["network", "create", probe, `ipv4.address=${await nextSubnet()}`, "ipv4.nat=true", "ipv6.address=none"]);
    if (r.code !== 0) {
      st.lxdMissing = `LXD cannot create a bridge network here: ${(r.stderr || r.stdout).trim()}`;
      log(`${st.lxdMissing}; Lodge alone`);
      st.servers.splice(st.servers.indexOf(lxd), 1);
      await deleteOurs(lxd);
    } else must(await lxc(lxd, ["network", "delete", probe]), "LXD: network delete (probe)");
  }
  if (lxd && !opts.lxdAuto && st.servers.includes(lxd))
    notes.push("LXD's ipv4.address=auto is not timed: it probes candidate subnets from the host (ping and TCP :22 of .1 and .254, 1 s timeout) through the default route; --lxd-auto times it");
  const servers = st.servers;

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

  const loadEnd = loadavg();
  clearInterval(sampler);
  loadSamples.push(loadEnd.l1);
  return report({
    date: new Date().toISOString(),
    runs: opts.runs,
    lxcClient,
    lodge: lodge.version,
    lxd: servers.includes(lxd) ? lxd.version : null,
    lxdMissing: st.lxdMissing,
    lxdStartedByBench: !!st.lxdChild,
    lxdAuto: opts.lxdAuto,
    subnets: opts.subnets,
    launchNets,
    image: fingerprint,
    loadStart,
    loadEnd,
    loadDuring: { mean: loadSamples.reduce((a, b) => a + b, 0) / loadSamples.length, max: Math.max(...loadSamples) },
    loadHigh: loadStart.l1 > loadStart.cpus * 0.75,
  });
}

let result;
let failed = null;
try {
  result = await main();
} catch (e) {
  failed = e;
} finally {
  if (interrupts === 0) await cleanup();
}
if (interrupts > 0) await new Promise(() => {}); // the signal handler exits
if (failed) {
  log(`failed: ${failed.stack ?? failed.message}`);
  process.exit(1);
}
if (opts.json) console.log(JSON.stringify(result, null, 2));
else printText(result);
