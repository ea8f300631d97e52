/**
 * `lodge init` without --auto, --preseed or --dump: the questions `lxd init` asks that Lodge
 * can act on (a new storage pool, its backend and loop file or device, when the server has a
 * storage pool API; a new bridge, its name and addresses, or an existing interface; image updates),
 * turned into a preseed. The answers are read line by line from stdin, which need not be a
 * terminal: `printf 'yes\nlt0\nauto\nnone\n' | lodge init` works, and an input that ends early
 * takes the defaults. The interview itself is pure (answers come through `ask`): unit-tested.
 */
import { createInterface } from "node:readline";
import { UsageError } from "./exit.js";
import { AUTO_NETWORK_PREFIX, defaultPool, defaultProfile, type AutoFacts, type Current } from "./init-plan.js";
import type { Preseed, PreseedStoragePool } from "./init-preseed.js";
import { nicFor } from "./network-attach.js";

/** Asks one question; null when the input has ended. */
export type Ask = (prompt: string) => Promise<string | null>;

/** What the questions know besides the server's state: AutoFacts, and for a loop file and a device… */
export interface InterviewFacts extends AutoFacts {
  /** The loop file size offered (lxd init: a fifth of the disk, 5 to 30 GiB). */
  loopSizeGiB?: number;
  isBlockDevice?: (path: string) => boolean;
}

export interface Interview {
  preseed: Preseed;
  /** The user asked to see the preseed. */
  print: boolean;
  notes: string[];
}

const BRIDGE_NAME = /^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$/;
const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const V4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function validV4(v: string): boolean {
  const m = V4_CIDR.exec(v);
  return !!m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}

function validV6(v: string): boolean {
  const slash = v.lastIndexOf("/");
  if (slash < 0) return false;
  const prefix = v.slice(slash + 1);
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= 128 && /^[0-9a-fA-F:.]+$/.test(v.slice(0, slash)) && v.includes(":");
}

/**
 * The questions, as lxd init words them. `facts` are the server's networks (managed ones and
 * host interfaces) and the host's interfaces; `cur` holds the default profile and pool. `say`
 * prints retry hints.
 */
export async function interview(ask: Ask, facts: InterviewFacts, cur: Current, say: (text: string) => void): Promise<Interview> {
  const byName = new Map(facts.networks.map((n) => [n.name, n]));
  const taken = (name: string) => byName.has(name) || facts.hostInterfaces.includes(name);
  const question = async (prompt: string, def: string | undefined, check: (v: string) => string | undefined): Promise<string> => {
    for (;;) {
      const line = await ask(prompt);
      const answer = line === null || line.trim() === "" ? def : line.trim();
      const problem = answer === undefined ? "An answer is needed." : check(answer);
      if (problem === undefined) return answer!;
      if (line === null) throw new UsageError(`The input ended before this question had an answer: ${prompt.trim()} (${problem})`);
      say(`${problem}\n\n`);
    }
  };
  const yesNo = async (prompt: string, def: boolean) => {
    const v = await question(`${prompt} (yes/no) [default=${def ? "yes" : "no"}]: `, def ? "yes" : "no", (a) => (/^(y|yes|n|no)$/i.test(a) ? undefined : "Invalid input, try again."));
    return /^y/i.test(v);
  };
  /** Where a pool of a driver other than dir lives: a new loop file or device, or an existing source. */
  const poolSource = async (driver: string): Promise<Record<string, string>> => {
    const upper = driver.toUpperCase();
    if (!(await yesNo(`Create a new ${upper} pool?`, true))) return { source: await question(`Name of the existing ${upper} pool or dataset: `, undefined, (v) => (v ? undefined : "An answer is needed.")) };
    if (await yesNo("Would you like to use an existing empty block device (e.g. a disk or partition)?", false)) {
      const device = await question("Path to the existing block device: ", undefined, (v) =>
        !v.startsWith("/") || (facts.isBlockDevice && !facts.isBlockDevice(v)) ? `"${v}" is not a block device` : undefined,
      );
      return { source: device };
    }
    const def = facts.loopSizeGiB ?? 5;
    const size = await question(`Size in GiB of the new loop device (1GiB minimum) [default=${def}GiB]: `, `${def}GiB`, (v) => {
      const m = /^(\d+)\s*(GiB)?$/.exec(v);
      if (!m) return `Invalid size "${v}": a whole number of GiB, e.g. 5 or 5GiB`;
      return Number(m[1]) < 1 ? "Minimum size is 1GiB" : undefined;
    });
    return { size: `${/^(\d+)/.exec(size)![1]}GiB` };
  };

  const notes: string[] = [];
  let eth0: Record<string, string> | undefined;

  // Storage first, as lxd init asks; only of a server with a storage pool API.
  let rootPool: string | undefined;
  const preseed: Preseed = { storage_pools: [defaultPool(cur)] };
  if (cur.pools && facts.pools) {
    const pools = new Set(facts.pools);
    const drivers = facts.storageDrivers?.length ? facts.storageDrivers : ["dir"];
    if (await yesNo("Do you want to configure a new storage pool?", !pools.has("default"))) {
      let free = "default";
      for (let i = 1; pools.has(free); i++) free = `pool${i}`;
      const name = await question(`Name of the new storage pool [default=${free}]: `, free, (v) => {
        if (pools.has(v)) return `The requested storage pool "${v}" already exists. Please choose another name.`;
        if (!POOL_NAME.test(v)) return `Invalid storage pool name "${v}": letters, digits, "_", "." and "-", starting with a letter or digit.`;
        return undefined;
      });
      const driver =
        drivers.length > 1
          ? await question(`Name of the storage backend to use (${drivers.join(", ")}) [default=dir]: `, drivers.includes("dir") ? "dir" : drivers[0], (v) => (drivers.includes(v) ? undefined : "Invalid input, try again."))
          : drivers[0]!;
      const pool: PreseedStoragePool = { name, driver };
      if (driver !== "dir") pool.config = await poolSource(driver);
      preseed.storage_pools = [pool];
      rootPool = name;
    }
  }

  if (await yesNo("Would you like to create a new local network bridge?", true)) {
    let free = 0;
    while (taken(`${AUTO_NETWORK_PREFIX}${free}`)) free++;
    const name = await question(`What should the new bridge be called? [default=${AUTO_NETWORK_PREFIX}${free}]: `, `${AUTO_NETWORK_PREFIX}${free}`, (v) => {
      if (taken(v)) return `The requested network bridge "${v}" already exists. Please choose another name.`;
      if (!BRIDGE_NAME.test(v)) return `Invalid bridge name "${v}": up to 15 letters, digits, "-", "_" or ".", starting with a letter.`;
      return undefined;
    });
    const v4 = await question("What IPv4 address should be used? (CIDR subnet notation, “auto” or “none”) [default=auto]: ", "auto", (v) =>
      v === "auto" || v === "none" || validV4(v) ? undefined : `Invalid IPv4 address "${v}": e.g. 10.0.8.1/24, auto or none.`,
    );
    const v6 = await question("What IPv6 address should be used? (CIDR subnet notation, “auto” or “none”) [default=auto]: ", "auto", (v) =>
      v === "auto" || v === "none" || validV6(v) ? undefined : `Invalid IPv6 address "${v}": e.g. fd42:1:2:3::1/64, auto or none.`,
    );
    preseed.networks = [{ name, type: "bridge", config: { "ipv4.address": v4, "ipv6.address": v6 } }];
    eth0 = { type: "nic", network: name, name: "eth0" };
  } else if (await yesNo("Would you like to configure Lodge to use an existing bridge or host interface?", false)) {
    const name = await question("Name of the existing bridge or host interface: ", undefined, (v) => (byName.has(v) ? undefined : `The interface "${v}" doesn't exist.`));
    eth0 = nicFor(byName.get(name)!, "eth0");
  }
  // Asked for in so many words: eth0 moves to the new bridge (a nic of another kind stays).
  const profile = defaultProfile(cur, eth0, notes, true, rootPool);
  if (Object.keys(profile.devices ?? {}).length) preseed.profiles = [profile];

  if (!(await yesNo("Would you like stale cached images to be updated automatically?", true))) preseed.config = { "images.auto_update_interval": "0" };
  const print = await yesNo('Would you like a YAML "lodge init" preseed to be printed?', false);
  return { preseed, print, notes };
}

/** Questions on `output`, answers line by line from `input` (a terminal or not). */
export function lineAsker(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): { ask: Ask; close: () => void } {
  const rl = createInterface({ input, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  let ended = false;
  return {
    ask: async (prompt) => {
      output.write(prompt);
      if (ended) {
        output.write("\n");
        return null;
      }
      const next = await lines.next();
      if (next.done) {
        ended = true;
        output.write("\n");
        return null;
      }
      // A terminal echoes the answer; piped answers would leave the prompts on one line.
      if (!(input as { isTTY?: boolean }).isTTY) output.write("\n");
      return next.value;
    },
    close: () => rl.close(),
  };
}
