// The two servers a side-by-side bench talks to through the same `lxc` client: its own lodged on a
// temporary directory (or one given with --lodge-dir) and LXD (the one answering on --lxd-socket,
// or one the bench starts with `lxd --group root` and stops at the end). Also what every bench
// does around them: the temporary directory, the busybox image built and imported into both, the
// names it makes (PREFIX-…), the clean-up at the end, on failure and on Ctrl-C.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, closeSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { socketOwner } from "./proc.mjs";
import { answers, http, run, running, sleep } from "./run.mjs";
import { loadSampler } from "./stats.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const LODGE_CLI = join(ROOT, "dist/lodge.js");
export const LODGED = join(ROOT, "dist/lodged.js");
export const DEFAULT_LXD_SOCKET = "/var/lib/lxd/unix.socket";

export const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

/** Throws with the last lines of the command's output unless it exited 0. */
export function must(r, what) {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
  return r;
}

export async function waitFor(cond, timeoutMs, what) {
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

/** Runs fn over items, at most `width` at a time. */
export async function inBatches(items, width, fn) {
  const out = [];
  let next = 0;
  const workers = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return out;
}

/** sha256 of the concatenated files (an image's fingerprint: unified tarball, or metadata then rootfs). */
async function sha256(files) {
  const h = createHash("sha256");
  for (const f of files) for await (const chunk of createReadStream(f)) h.update(chunk);
  return h.digest("hex");
}

const nameOf = (u) => decodeURIComponent(String(u).split("/").pop().split("?")[0]);

/**
 * One bench's servers and everything it made. opts: { lodgeDir, lxdSocket, noLxd } from the
 * command line; prefix names all it creates ("lb1234"); tmpName names its temporary directory.
 * Each server is { key: "lodge"|"lxd", label, socket, env, version, daemonPid, image, ... }.
 */
export class Bench {
  constructor({ prefix, tmpName, opts }) {
    this.prefix = prefix;
    this.opts = opts;
    this.base = mkdtempSync(join(tmpdir(), `${tmpName}-`));
    chmodSync(this.base, 0o711); // an unprivileged container's root must be able to reach its rootfs below
    this.lxcConf = join(this.base, "lxc-conf");
    mkdirSync(this.lxcConf);
    this.servers = [];
    this.lodgeChild = null;
    this.lodgeDir = null;
    this.lxdChild = null; // set when this bench started LXD
    this.lxdDir = dirname(opts.lxdSocket ?? DEFAULT_LXD_SOCKET);
    this.lxdMissing = null;
    this.aborted = false;
    this.errors = [];
    this.seq = 0;
    this.cleanups = []; // (server) => Promise, run per server before the common clean-up
    this.afterLodge = []; // (lodgeDir) => Promise, run once lodged is stopped
  }

  /** A fresh name PREFIX-KINDN. */
  newName(kind) {
    return `${this.prefix}-${kind}${this.seq++}`;
  }

  lxcEnv(socket) {
    const env = { ...process.env, LXD_SOCKET: socket, LXD_CONF: this.lxcConf };
    delete env.LXD_DIR;
    return env;
  }

  /** `lxc ARGS` against a server; refuses to start anything once interrupted. */
  async lxc(server, args, timeoutMs = 180000) {
    if (this.aborted) throw new Error("interrupted");
    return run("lxc", args, { env: server.env, timeoutMs });
  }

  /** Records the error of one sample and goes on (the clean-up catches what it left behind). */
  async sample(what, fn) {
    try {
      await fn();
    } catch (e) {
      if (this.aborted) throw e;
      this.errors.push(`${what}: ${e.message}`);
      log(`  ! ${what}: ${e.message}`);
    }
  }

  /** What every result's meta says (the load ends here), with the bench's own fields. */
  meta(fields) {
    const lxd = this.servers.find((s) => s.key === "lxd");
    return {
      date: new Date().toISOString(),
      runs: this.opts.runs,
      lxcClient: this.lxcClient,
      lodge: this.servers.find((s) => s.key === "lodge")?.version ?? null,
      lxd: lxd?.version ?? null,
      lxdMissing: this.lxdMissing,
      lxdStartedByBench: !!this.lxdChild,
      ...fields,
      ...this.load.stop(),
    };
  }

  /** The lxc client's version; throws when it is missing. */
  async lxcClientVersion() {
    const client = await run("lxc", ["version"], { env: this.lxcEnv("/nonexistent") });
    if (client.code === null || /ENOENT/.test(client.stderr)) throw new Error("the lxc client is missing (apt-get install -y lxd-client)");
    return /Client version:\s*(\S+)/.exec(client.stdout + client.stderr)?.[1] ?? "?";
  }

  async ensureBuilt(files = [LODGED, LODGE_CLI]) {
    if (files.every((f) => existsSync(f))) return;
    log("dist/ is missing: npm run build");
    must(await run("npm", ["run", "build"], { env: process.env }), "npm run build");
  }

  /**
   * Starts sampling the load, checks the client, builds dist/ if any of `build` is missing, and
   * starts both servers, described and ready for `lxc`: Lodge always, LXD unless it cannot run.
   */
  async start({ build } = {}) {
    this.load = loadSampler();
    if (this.load.high) log(`note: load average ${this.load.loadStart.l1} on ${this.load.loadStart.cpus} CPUs, numbers will be noisy`);
    this.lxcClient = await this.lxcClientVersion();
    await this.ensureBuilt(build);
    this.servers.push(await this.startLodge());
    const lxd = await this.startLxd();
    if (lxd) this.servers.push(lxd);
    else log(`LXD is missing: ${this.lxdMissing}; Lodge alone`);
    for (const s of this.servers) await this.describe(s);
    return { lodge: this.servers[0], lxd };
  }

  async startLodge() {
    let dir = this.opts.lodgeDir;
    if (!dir) {
      dir = join(this.base, "lodge");
      const out = join(this.base, "lodged.out");
      const fd = openSync(out, "a");
      log(`starting lodged on ${dir}`);
      // Its own process group: a Ctrl-C must not kill it before what it holds is deleted.
      this.lodgeChild = spawn(process.execPath, [LODGED, "--dir", dir], { detached: true, stdio: ["ignore", fd, fd] });
      closeSync(fd);
      let exited = null;
      this.lodgeChild.on("exit", (code, sig) => (exited = code ?? sig));
      await waitFor(async () => exited !== null || (existsSync(join(dir, "unix.socket")) && (await answers(join(dir, "unix.socket")))), 30000, "lodged's socket");
      if (exited !== null) throw new Error(`lodged exited (${exited}):\n${tail(out, 10)}`);
    }
    const socket = join(dir, "unix.socket");
    if (!(await answers(socket))) throw new Error(`no lodged answers on ${socket}`);
    this.lodgeDir = dir;
    return { key: "lodge", label: "Lodge", socket, daemonPid: this.lodgeChild?.pid ?? socketOwner(socket) };
  }

  async startLxd() {
    if (this.opts.noLxd) {
      this.lxdMissing = "--no-lxd given";
      return null;
    }
    const socket = this.opts.lxdSocket ?? DEFAULT_LXD_SOCKET;
    if (await answers(socket)) return { key: "lxd", label: "LXD", socket, daemonPid: socketOwner(socket) };
    if (this.opts.lxdSocket) {
      this.lxdMissing = `nothing answers on --lxd-socket ${socket}`;
      return null;
    }
    if ((await run("sh", ["-c", "command -v lxd"])).code !== 0) {
      this.lxdMissing = `the lxd daemon is not installed (apt-get install -y lxd) and nothing answers on ${socket}`;
      return null;
    }
    const lxdLog = join(this.base, "lxd.log");
    const env = { ...process.env, LXD_DIR: this.lxdDir };
    log("starting LXD (lxd --group root), it will be stopped at the end");
    const fd = openSync(join(this.base, "lxd.out"), "a");
    this.lxdChild = spawn("lxd", ["--group", "root", "--logfile", lxdLog], { detached: true, stdio: ["ignore", fd, fd], env });
    closeSync(fd);
    let exited = null;
    this.lxdChild.on("exit", (code, sig) => (exited = code ?? sig));
    try {
      await waitFor(async () => exited !== null || (await answers(socket)), 60000, "LXD's socket");
    } catch (e) {
      this.lxdMissing = `LXD did not come up: ${e.message}`;
      return null;
    }
    if (exited !== null) {
      this.lxdChild = null;
      this.lxdMissing = `lxd exited (${exited}): ${tail(join(this.base, "lxd.out"))} ${tail(lxdLog)}`;
      return null;
    }
    const ready = await run("lxd", ["waitready", "--timeout=60"], { env });
    if (ready.code !== 0) {
      this.lxdMissing = `lxd waitready failed: ${ready.stderr.trim()}`;
      return null;
    }
    return { key: "lxd", label: "LXD", socket, daemonPid: this.lxdChild.pid };
  }

  /** The client's environment and the server's version string. */
  async describe(server) {
    server.env = this.lxcEnv(server.socket);
    const env = (await http(server.socket, "GET", "/1.0")).json?.metadata?.environment ?? {};
    server.version = `${env.server ?? "?"} ${env.server_version ?? "?"}`;
  }

  /**
   * Makes instances launch with a root disk (and, with noNic, without a NIC); sets
   * server.profileArgs. An LXD without a pool gets a `dir` pool `default` when the bench started
   * it (like a one-time `lxd init`, kept afterwards). The default profile is used when it fits;
   * an LXD the bench started gets the root disk added to it; otherwise a profile PREFIX-root with
   * only the root disk is made (and deleted at the end).
   */
  async ensureRootDisk(server, { noNic = false } = {}) {
    server.profileArgs = [];
    const pools = (await http(server.socket, "GET", "/1.0/storage-pools")).json?.metadata ?? [];
    if (server.key === "lxd" && pools.length === 0) {
      if (!this.lxdChild) throw new Error(`LXD at ${server.socket} has no storage pool (run lxd init)`);
      log("LXD: no storage pool, creating `default` (dir)");
      must(await this.lxc(server, ["storage", "create", "default", "dir"]), "lxc storage create");
      pools.push("/1.0/storage-pools/default");
    }
    const devices = (await http(server.socket, "GET", "/1.0/profiles/default")).json?.metadata?.devices ?? {};
    const hasNic = Object.values(devices).some((d) => d.type === "nic");
    const rootDev = Object.values(devices).find((d) => d.type === "disk" && d.path === "/");
    if (rootDev && !(noNic && hasNic)) return;
    if (!rootDev && server.key === "lxd" && this.lxdChild && !(noNic && hasNic)) {
      log("LXD: adding a root disk to the default profile");
      must(await this.lxc(server, ["profile", "device", "add", "default", "root", "disk", "path=/", "pool=default"]), "lxc profile device add");
      return;
    }
    const name = `${this.prefix}-root`;
    const pool = rootDev?.pool ?? nameOf(pools[0] ?? "");
    must(await this.lxc(server, ["profile", "create", name]), "lxc profile create");
    server.createdProfile = name;
    must(await this.lxc(server, ["profile", "device", "add", name, "root", "disk", "path=/", `pool=${pool}`]), "lxc profile device add");
    server.profileArgs = noNic ? ["-p", name] : ["-p", "default", "-p", name];
    log(`${server.label}: launching with profile ${name} (root disk${noNic ? " only" : ""})`);
  }

  /** `lodge image build DEFINITION` into a new directory under the temporary one: { files, fingerprint }. */
  async buildImage(definition, { split = false } = {}) {
    const out = join(this.base, `image-${this.seq++}`);
    mkdirSync(out);
    log(`building ${definition}${split ? " (split)" : ""}`);
    const r = await run(process.execPath, [LODGE_CLI, "image", "build", join(ROOT, definition), "-o", out, ...(split ? ["--split"] : [])], {
      env: { ...process.env, LODGE_DIR: this.lodgeDir },
    });
    must(r, `lodge image build ${definition}`);
    return imageIn(out, split);
  }

  /** Imports the image into the server unless its fingerprint is there; server.image = fingerprint. */
  async importImage(server, { files, fingerprint }) {
    const img = await http(server.socket, "GET", `/1.0/images/${fingerprint}`);
    if (img.status === 200) {
      log(`${server.label}: image ${fingerprint.slice(0, 12)} already there, reusing it`);
    } else {
      must(await this.lxc(server, ["image", "import", ...files], 600000), `${server.label}: lxc image import`);
      (server.importedImages ??= new Set()).add(fingerprint);
    }
    server.image = fingerprint;
  }

  /** Names of the bench's own objects on a server: `instances`, `storage-pools`, `networks`… */
  async listOurs(server, what) {
    const r = await http(server.socket, "GET", `/1.0/${what}`, undefined, 10000);
    return (r.json?.metadata ?? []).map(nameOf).filter((n) => n.startsWith(`${this.prefix}-`));
  }

  /** Deletes the bench's instances on a server, retried so that creates still in flight are caught. */
  async deleteOurInstances(server) {
    for (let attempt = 0; attempt < 5; attempt++) {
      let ours;
      try {
        ours = await this.listOurs(server, "instances");
      } catch {
        return;
      }
      if (ours.length === 0) return;
      log(`cleaning up: deleting ${ours.length} instance(s) on ${server.label}`);
      await inBatches(ours, 8, (n) => run("lxc", ["delete", "--force", n], { env: server.env, timeoutMs: 120000 }));
      await sleep(500 * attempt);
    }
  }

  /**
   * Waits (up to timeoutMs in all) for the server's running operations on the bench's objects:
   * a client killed by an interrupt leaves its operation running (a backup, a copy), and what it
   * holds cannot be deleted until it ends.
   */
  async waitOurOperations(server, timeoutMs = 60000) {
    const t0 = performance.now();
    const r = await http(server.socket, "GET", "/1.0/operations?recursion=1", undefined, 10000).catch(() => null);
    const ops = Object.values(r?.json?.metadata ?? {}).flat().filter((op) => op?.status === "Running" && JSON.stringify(op.resources ?? {}).includes(`/${this.prefix}-`));
    for (const op of ops) {
      const left = Math.floor((timeoutMs - (performance.now() - t0)) / 1000);
      if (left < 1) return;
      log(`cleaning up: waiting for ${server.label}'s operation ${op.description ?? op.id} to end`);
      await http(server.socket, "GET", `/1.0/operations/${op.id}/wait?timeout=${left}`, undefined, (left + 5) * 1000).catch(() => null);
    }
  }

  /** Instances first, then the images it imported, what the bench registered in cleanups, the profile. */
  async cleanServer(server) {
    await this.waitOurOperations(server);
    await this.deleteOurInstances(server);
    for (const fp of server.importedImages ?? []) await run("lxc", ["image", "delete", fp], { env: server.env, timeoutMs: 60000 });
    for (const fn of this.cleanups) await fn(server);
    if (server.createdProfile) await run("lxc", ["profile", "delete", server.createdProfile], { env: server.env, timeoutMs: 60000 });
  }

  async doCleanup() {
    this.aborted = true; // nothing new starts from here on
    for (const c of running) c.kill("SIGKILL"); // clients in flight; their server-side operations finish
    for (const s of this.servers) {
      if (!s.env) continue;
      try {
        await this.cleanServer(s);
      } catch (e) {
        log(`clean-up on ${s.label}: ${e.message}`);
      }
    }
    if (this.lodgeChild) {
      this.lodgeChild.kill("SIGTERM");
      if (!(await waitExit(this.lodgeChild, 10000))) this.lodgeChild.kill("SIGKILL");
      // liblxc containers outlive lodged: stop any left under its directory before removing it.
      const lxcpath = join(this.lodgeDir, "containers");
      const ls = await run("lxc-ls", ["-P", lxcpath, "--running"]);
      for (const n of ls.stdout.split(/\s+/).filter(Boolean)) {
        log(`cleaning up: lxc-stop -k ${n} (left by lodged)`);
        await run("lxc-stop", ["-k", "-P", lxcpath, "-n", n], { timeoutMs: 30000 });
      }
      for (const fn of this.afterLodge) await fn(this.lodgeDir);
    }
    if (this.lxdChild) await this.stopLxd();
    try {
      rmSync(this.base, { recursive: true, force: true });
    } catch (e) {
      log(`could not remove ${this.base}: ${e.message}`);
    }
  }

  /** Stops the LXD the bench started, unless instances that are not the bench's appeared on it. */
  async stopLxd() {
    const lxd = this.servers.find((s) => s.key === "lxd");
    const others = lxd ? ((await http(lxd.socket, "GET", "/1.0/instances").catch(() => null))?.json?.metadata ?? []) : [];
    if (others.length) {
      log(`leaving the LXD this bench started running: it now has ${others.length} instance(s) that are not the bench's (stop it with: LXD_DIR=${this.lxdDir} lxd shutdown)`);
      return;
    }
    log("stopping the LXD this bench started");
    await run("lxd", ["shutdown", "--timeout=60"], { env: { ...process.env, LXD_DIR: this.lxdDir }, timeoutMs: 70000 });
    if (!(await waitExit(this.lxdChild, 10000))) this.lxdChild.kill("SIGKILL");
  }

  cleanup() {
    this.cleaning ??= this.doCleanup();
    return this.cleaning;
  }

  /**
   * Runs main with the clean-up at the end, on failure and on SIGINT/SIGTERM/SIGHUP (a second
   * one gives up); prints the result with print (or as JSON) and exits.
   */
  async main(main, { json, print }) {
    let interrupts = 0;
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
      process.on(sig, () => {
        if (++interrupts > 1) {
          log(`${sig} again: giving up the clean-up (check for what is named ${this.prefix}-* and ${this.base})`);
          process.exit(130);
        }
        log(`${sig}: cleaning up (send it again to give up)`);
        this.cleanup().finally(() => process.exit(130));
      });
    }
    process.on("unhandledRejection", (e) => {
      log(`unexpected: ${e?.stack ?? e}`);
      this.cleanup().finally(() => process.exit(1));
    });
    let result;
    let failed = null;
    try {
      result = await main();
    } catch (e) {
      failed = e;
    } finally {
      if (interrupts === 0) await this.cleanup();
    }
    if (interrupts > 0) await new Promise(() => {}); // the signal handler exits
    if (failed) {
      log(`failed: ${failed.stack ?? failed.message}`);
      process.exit(1);
    }
    if (json) console.log(JSON.stringify(result, null, 2));
    else print(result);
  }
}

/** The image `lodge image build` left in dir: one tarball, or (split) metadata tarball and rootfs.squashfs. */
export async function imageIn(dir, split) {
  const all = readdirSync(dir);
  const tars = all.filter((f) => /\.tar(\.xz|\.gz)?$/.test(f));
  const squash = all.filter((f) => f.endsWith(".squashfs"));
  if (tars.length !== 1 || squash.length !== (split ? 1 : 0)) throw new Error(`expected ${split ? "a metadata tarball and a rootfs.squashfs" : "one image tarball"} in ${dir}, found: ${all.join(", ")}`);
  const files = [join(dir, tars[0]), ...squash.map((f) => join(dir, f))];
  return { files, fingerprint: await sha256(files) };
}
