/**
 * `lodge init` without an image: setting up the server, as `lxd init` does. `--auto` makes
 * what a first instance needs (network lodgebr0, the default pool, the default profile's root
 * disk and eth0; with --storage-backend and friends, the pool lxd init's flags describe); `--preseed` applies LXD-shaped YAML from stdin; `--dump` prints the server's
 * state in that shape; with none of them, questions (init-interactive.ts). Every way ends in
 * one plan (init-plan.ts), applied with undo on failure (init-apply.ts).
 */
import { statSync } from "node:fs";
import { readdir, statfs } from "node:fs/promises";
import { lodgeDir } from "../api/paths.js";
import type { Profile } from "../api/profile.js";
import type { Server } from "../api/server.js";
import type { LodgeClient } from "../client/client.js";
import { readStdinText } from "./editor.js";
import { UsageError } from "./exit.js";
import { withClient, type GlobalOptions } from "./globals.js";
import { applyPlan, hasStoragePools, namesOf, readCurrent } from "./init-apply.js";
import { interview, lineAsker, type InterviewFacts } from "./init-interactive.js";
import { AUTO_NAMES, autoNames, autoPreseed, planPreseed, type AutoFacts, type AutoOptions } from "./init-plan.js";
import { dumpPreseed, parsePreseed, type Preseed } from "./init-preseed.js";
import type { Network } from "./network-types.js";
import type { StoragePool } from "./storage-types.js";
import { printObject, renderYaml } from "./output.js";

export interface ServerInitOptions {
  auto?: boolean;
  preseed?: boolean;
  dump?: boolean;
  networkAddress?: string;
  networkPort?: string;
  storageBackend?: string;
  storageCreateLoop?: string;
  storageCreateDevice?: string;
  storagePool?: string;
}

/** The flags of server set-up only make sense alone (and the --auto ones with --auto). */
export function checkServerInitOptions(o: ServerInitOptions): void {
  const modes = (["auto", "preseed", "dump"] as const).filter((m) => o[m]);
  if (modes.length > 1) throw new UsageError(`--${modes[0]} and --${modes[1]} cannot be used together`);
  const autoFlags = [
    ["--network-address", o.networkAddress],
    ["--network-port", o.networkPort],
    ["--storage-backend", o.storageBackend],
    ["--storage-create-loop", o.storageCreateLoop],
    ["--storage-create-device", o.storageCreateDevice],
    ["--storage-pool", o.storagePool],
  ] as const;
  for (const [flag, v] of autoFlags) if (v !== undefined && !o.auto) throw new UsageError(`${flag} goes with --auto`);
  if (o.storageCreateLoop !== undefined && (!/^\d+$/.test(o.storageCreateLoop) || Number(o.storageCreateLoop) < 1))
    throw new UsageError(`Invalid --storage-create-loop "${o.storageCreateLoop}": the loop file's size in GB, a whole number from 1`);
  if (o.storageCreateDevice !== undefined && !o.storageCreateDevice.startsWith("/"))
    throw new UsageError(`Invalid --storage-create-device "${o.storageCreateDevice}": the path of a block device, e.g. /dev/sdb`);
  if (o.networkPort !== undefined && (!/^\d+$/.test(o.networkPort) || Number(o.networkPort) < 1 || Number(o.networkPort) > 65535))
    throw new UsageError(`Invalid --network-port "${o.networkPort}": a port number from 1 to 65535`);
  if (o.networkPort !== undefined && o.networkAddress === undefined) throw new UsageError("--network-port goes with --network-address");
}

export async function serverInit(o: ServerInitOptions, g: GlobalOptions): Promise<void> {
  checkServerInitOptions(o);
  if (o.dump) return withClient(g, async (c) => printObject(await currentDump(c), g.format === "json" ? "json" : "yaml"));
  // The preseed is read (and checked) before anything is asked of the server.
  const given = o.preseed ? await parsePreseed(await readStdinText()) : undefined;
  await withClient(g, async (c) => {
    let preseed: Preseed;
    const notes: string[] = [];
    if (given) preseed = given;
    else if (o.auto) {
      const opts: AutoOptions = {
        networkAddress: o.networkAddress,
        networkPort: o.networkPort === undefined ? undefined : Number(o.networkPort),
        storageBackend: o.storageBackend,
        storageLoopSize: o.storageCreateLoop === undefined ? undefined : Number(o.storageCreateLoop),
        storageDevice: o.storageCreateDevice,
        storagePool: o.storagePool,
      };
      const auto = autoPreseed(await readCurrent(c, autoNames(opts)), await autoFacts(c), opts);
      preseed = auto.preseed;
      notes.push(...auto.notes);
    } else {
      const facts: InterviewFacts = { ...(await autoFacts(c)), loopSizeGiB: await defaultLoopSize(), isBlockDevice };
      const asker = lineAsker(process.stdin, process.stdout);
      try {
        const answers = await interview(asker.ask, facts, await readCurrent(c, AUTO_NAMES), (t) => process.stdout.write(t));
        preseed = answers.preseed;
        notes.push(...answers.notes);
        if (answers.print) process.stdout.write(await renderYaml(preseed));
      } finally {
        asker.close();
      }
    }
    // Read again for exactly the entities the preseed names, with their ETags.
    await applyPlan(c, planPreseed(preseed, await readCurrent(c, namesOf(preseed))));
    for (const n of notes) process.stderr.write(`Note: ${n}\n`);
  });
}

/** What --auto and the questions plan with: networks, host interfaces, storage drivers and pools. */
async function autoFacts(c: LodgeClient): Promise<AutoFacts> {
  const server = await c.get<Server>("/1.0");
  const env = server.environment as Partial<Server["environment"]> | undefined;
  const drivers = new Set<string>();
  for (const d of env?.storage_supported_drivers ?? []) if (d?.Name) drivers.add(d.Name);
  for (const d of (env?.storage ?? "").split("|")) if (d.trim()) drivers.add(d.trim());
  const facts: AutoFacts = { networks: await c.get<Network[]>("/1.0/networks?recursion=1"), hostInterfaces: await hostInterfaces() };
  // dir first: it is the default everywhere.
  if (drivers.size) facts.storageDrivers = [...drivers].sort((a, b) => (a === "dir" ? -1 : b === "dir" ? 1 : a < b ? -1 : 1));
  if (await hasStoragePools(c)) facts.pools = ((await c.get<string[] | null>("/1.0/storage-pools")) ?? []).map((u) => decodeURIComponent(u.split("/").pop()!));
  return facts;
}

/** lxd init's default loop size: a fifth of the disk under LODGE_DIR, from 5 to 30 GiB. */
async function defaultLoopSize(): Promise<number> {
  try {
    const st = await statfs(lodgeDir());
    return Math.min(30, Math.max(5, Math.floor((st.bsize * st.blocks) / 1024 ** 3 / 5)));
  } catch {
    return 5;
  }
}

/** The client runs on the daemon's host (unix socket): a path there can be checked. */
function isBlockDevice(path: string): boolean {
  try {
    return statSync(path).isBlockDevice();
  } catch {
    return false;
  }
}

/**
 * The host's interface names. The client talks to the daemon over its unix socket, so it is on
 * the same host; bridges there are host-global, whichever daemon made them.
 */
async function hostInterfaces(): Promise<string[]> {
  return readdir("/sys/class/net").catch(() => []);
}

/** The server's state as a preseed (what `--dump` prints). */
export async function currentDump(c: LodgeClient): Promise<Preseed> {
  const server = await c.get<Server>("/1.0");
  const networks = await c.get<Network[]>("/1.0/networks?recursion=1");
  const pools = (await hasStoragePools(c)) ? await c.get<StoragePool[]>("/1.0/storage-pools?recursion=1") : undefined;
  const profiles = await c.get<Profile[]>("/1.0/profiles?recursion=1");
  return dumpPreseed(server.config ?? {}, networks ?? [], pools, profiles ?? []);
}
