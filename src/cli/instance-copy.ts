/**
 * `lodge copy SRC[/SNAP] DST` and `lodge move`, as lxc's on one server: a copy gets new
 * volatile keys and its own data (with the source's snapshots unless --instance-only);
 * --refresh brings an existing copy in line. `move A B` renames (A/s B/t renames a snapshot),
 * `move A -s POOL` moves a stopped instance to another storage pool.
 */
import type { Command } from "commander";
import type { Instance, InstancesPost } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { checkInstanceName, parseKeyValues } from "./instance-args.js";
import { instanceUrl, runOperation } from "./instance-ref.js";
import { renameSnapshot, splitSnapshot } from "./instance-snapshot.js";
import type { VerbModule } from "./program.js";

interface CopyOpts {
  instanceOnly?: boolean;
  refresh?: boolean;
  storage?: string;
  ephemeral?: boolean;
  profile?: string[];
  noProfiles?: boolean;
  config?: string[];
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The copy request, as lxc builds it: the source's writable fields, volatile keys left to the server. */
export function copyRequest(src: Instance, source: string, name: string, opts: CopyOpts): InstancesPost {
  const config = Object.fromEntries(Object.entries(src.config).filter(([k]) => k === "volatile.base_image" || !k.startsWith("volatile.")));
  Object.assign(config, parseKeyValues(opts.config ?? [], "config setting"));
  const devices = structuredClone(src.devices);
  let profiles = [...src.profiles];
  if (opts.noProfiles) profiles = [];
  else if (opts.profile?.length) profiles = opts.profile;
  if (opts.storage) {
    // The root disk names the target pool: the local one, or one taken from the profiles.
    const [rootName, root] = Object.entries(src.expanded_devices).find(([, d]) => d.type === "disk" && d.path === "/") ?? ["root", { type: "disk", path: "/" }];
    devices[rootName] = { ...root, pool: opts.storage };
  }
  return {
    name,
    type: src.type,
    architecture: src.architecture,
    description: src.description,
    config,
    devices,
    profiles,
    ephemeral: opts.ephemeral ?? src.ephemeral,
    stateful: false,
    source: { type: "copy", source, instance_only: !!opts.instanceOnly, refresh: !!opts.refresh },
  };
}

async function copy(client: LodgeClient, from: string, to: string, opts: CopyOpts): Promise<void> {
  const snap = splitSnapshot(from);
  const srcName = snap ? snap[0] : from;
  checkInstanceName(srcName);
  checkInstanceName(to);
  const src = await client.get<Instance>(snap ? instanceUrl(srcName, `/snapshots/${encodeURIComponent(snap[1])}`) : instanceUrl(srcName));
  // A snapshot has no expanded devices of its own name list; its instance's profiles still apply.
  const full: Instance = { ...src, type: src.type ?? "container", description: src.description ?? "", expanded_devices: src.expanded_devices ?? src.devices };
  await runOperation(client, () => client.post<Operation>("/1.0/instances", copyRequest(full, from, to, opts)));
}

function registerCopy(program: Command): void {
  program
    .command("copy")
    .description("Copy an instance, or one of its snapshots (SRC/SNAP), into a new instance")
    .argument("<source>", "Instance, or INSTANCE/SNAPSHOT")
    .argument("<destination>", "New instance name")
    .option("--instance-only", "Leave the source's snapshots behind")
    .option("--refresh", "Bring an existing copy in line with the source (its snapshots and data)")
    .option("-s, --storage <pool>", "Storage pool of the new instance")
    .option("-e, --ephemeral", "Make the new instance ephemeral")
    .option("-p, --profile <profile>", "Profile for the new instance (repeatable; replaces the source's)", collect)
    .option("--no-profiles", "Give the new instance no profiles")
    .option("-c, --config <key=value>", "Config key for the new instance (repeatable)", collect)
    .action(async (from: string, to: string, opts: CopyOpts & { profiles?: boolean }, c: Command) => {
      // commander turns --no-profiles into profiles=false.
      const o: CopyOpts = { ...opts, noProfiles: opts.profiles === false };
      await withClient(globalsOf(c), (client) => copy(client, from, to, o));
    });
}

function registerMove(program: Command): void {
  program
    .command("move")
    .description("Rename an instance or a snapshot (A/s A/t), or move a stopped instance to another pool (-s POOL)")
    .argument("<source>", "Instance, or INSTANCE/SNAPSHOT")
    .argument("[destination]", "New name (INSTANCE/SNAPSHOT for a snapshot)")
    .option("-s, --storage <pool>", "Move the instance's volume to this storage pool")
    .action(async (from: string, to: string | undefined, opts: { storage?: string }, c: Command) => {
      if (to?.includes(":")) throw new UsageError(`Cannot move "${from}" to "${to}": moving between servers is not supported`);
      await withClient(globalsOf(c), async (client) => {
        const snap = splitSnapshot(from);
        if (snap) {
          const target = to ? splitSnapshot(to) : undefined;
          if (!target || target[0] !== snap[0] || opts.storage) throw new UsageError(`A snapshot is renamed within its instance: lodge move ${snap[0]}/${snap[1]} ${snap[0]}/NEW`);
          return renameSnapshot(client, snap[0], snap[1], target[1]);
        }
        checkInstanceName(from);
        if (to !== undefined) {
          if (to.includes("/")) throw new UsageError(`Invalid instance name "${to}"`);
          checkInstanceName(to);
        }
        if (!opts.storage && (to === undefined || to === from)) throw new UsageError("Give a new name, or a pool with -s");
        const body: Record<string, unknown> = opts.storage ? { name: to ?? from, migration: true, pool: opts.storage } : { name: to };
        await runOperation(client, () => client.post<Operation>(instanceUrl(from), body));
      });
    });
}

export function verb(name: string): VerbModule {
  if (name === "copy") return { register: registerCopy };
  if (name === "move") return { register: registerMove };
  throw new Error(`instance-copy: no verb "${name}"`);
}
