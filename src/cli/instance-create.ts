/**
 * `lodge launch|init IMAGE [NAME]`: create an instance from a local image (alias or
 * fingerprint prefix) and, for launch, start it, printing "Creating NAME" / "Starting NAME"
 * as lxc does. Without a name a random adjective-noun one is picked.
 */
import type { Command } from "commander";
import type { InstancesPost } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { checkInstanceName, deviceOverrides, parseKeyValues, randomName } from "./instance-args.js";
import { changeState } from "./instance-ref.js";
import { waitWithProgress } from "./progress.js";
import type { VerbModule } from "./program.js";

interface CreateOpts {
  config: string[];
  device: string[];
  profile: string[];
  noProfiles?: boolean;
  ephemeral?: boolean;
  empty?: boolean;
  vm?: boolean;
  description?: string;
  storage?: string;
  // init only: setting up the server (init.ts)
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

const SERVER_INIT_FLAGS = ["auto", "preseed", "dump", "networkAddress", "networkPort", "storageBackend", "storageCreateLoop", "storageCreateDevice", "storagePool"] as const;

/** Flags of instance creation given on the command line (refused when init sets up the server). */
function instanceOnlyFlags(o: CreateOpts): string[] {
  const out: string[] = [];
  if (o.config.length) out.push("--config");
  if (o.device.length) out.push("--device");
  if (o.profile.length) out.push("--profile");
  if ((o as { profiles?: boolean }).profiles === false) out.push("--no-profiles");
  if (o.ephemeral) out.push("--ephemeral");
  if (o.vm) out.push("--vm");
  if (o.description !== undefined) out.push("--description");
  if (o.storage !== undefined) out.push("--storage");
  return out;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function registerCreate(program: Command, verb: "launch" | "init"): void {
  const cmd = program
    .command(verb)
    .description(
      verb === "launch"
        ? "Create and start an instance from an image"
        : "Create an instance from an image (left stopped); without an image, set up the server: --auto, --preseed, --dump, or questions",
    )
    .argument("[image]", "Image: [local:]alias or fingerprint (none with --empty)")
    .argument("[name]", "Instance name (default: a random one)")
    .option("-c, --config <key=value>", "Config key for the new instance (repeatable)", collect, [])
    .option("-d, --device <device,key=value>", "Override a profile device's key, e.g. root,size=10GiB (repeatable)", collect, [])
    .option("-p, --profile <profile>", "Profile to apply (repeatable; default: default)", collect, [])
    .option("-n, --no-profiles", "Create the instance with no profiles")
    .option("-e, --ephemeral", "Ephemeral instance: deleted when it stops")
    .option("--empty", "Create an empty instance (no image)")
    .option("--vm", "Create a virtual machine")
    .option("--description <text>", "Instance description")
    .option("-s, --storage <pool>", "Storage pool for the instance's root disk (default: the profile's)");
  if (verb === "init")
    cmd
      .option("--auto", "Set up the server with defaults: network lodgebr0, the default storage pool, eth0 and root in the default profile")
      .option("--preseed", "Set up the server from a YAML preseed on stdin (LXD's shape: config, networks, storage_pools, profiles)")
      .option("--dump", "Print the server's configuration as a preseed")
      .option("--network-address <address>", "With --auto: address to serve the API on (core.https_address)")
      .option("--network-port <port>", "With --auto: port for --network-address (default 8443)")
      .option("--storage-backend <driver>", "With --auto: driver of the storage pool (dir or btrfs; default: dir)")
      .option("--storage-create-loop <size>", "With --auto: make the pool on a loop file of SIZE GB (btrfs)")
      .option("--storage-create-device <device>", "With --auto: make the pool on this empty block device (btrfs)")
      .option("--storage-pool <name>", "With --auto: the new pool's name (with a loop or a device), else an existing source for it")
      .addHelpText("after", "\nExamples:\n  lodge init bb c1              create instance c1 from image bb\n  lodge init --auto             set up the server with defaults\n  lodge init --auto --storage-backend btrfs --storage-pool fast --storage-create-loop 5\n  lodge init --preseed < seed.yaml\n  lodge init --dump > seed.yaml");
  cmd.action(async (image: string | undefined, name: string | undefined, opts: CreateOpts, c: Command) => {
    const serverFlags = SERVER_INIT_FLAGS.filter((f) => opts[f] !== undefined);
    if (verb === "init" && image === undefined && !opts.empty) {
      const instanceFlags = instanceOnlyFlags(opts);
      if (instanceFlags.length) throw new UsageError(`${instanceFlags.join(", ")} ${instanceFlags.length > 1 ? "are" : "is"} for creating an instance: name an image`);
      return (await import("./init.js")).serverInit(opts, globalsOf(c));
    }
    if (serverFlags.length) throw new UsageError(`--${serverFlags[0]!.replace(/[A-Z]/g, (l) => "-" + l.toLowerCase())} sets up the server: give no image`);
    let img = image;
    let n = name;
    if (opts.empty && img !== undefined && n === undefined) [img, n] = [undefined, img];
    if (opts.empty && img !== undefined) throw new UsageError("--empty takes no image: give only a name");
    if (!opts.empty && img === undefined) throw new UsageError("No image given: name an image alias or fingerprint (or use --empty)");
    if (n !== undefined) checkInstanceName(n);
    const instanceName = n ?? randomName();
    await withClient(globalsOf(c), async (client) => {
      const body = await createRequest(client, img, instanceName, opts);
      process.stdout.write(`Creating ${instanceName}\n`);
      await waitWithProgress(client, () => client.post<Operation>("/1.0/instances", body), { label: "Retrieving image" });
      if (verb === "launch") {
        process.stdout.write(`Starting ${instanceName}\n`);
        await changeState(client, instanceName, "start");
      }
    });
  });
}

/** The POST /1.0/instances body for the command line. */
export async function createRequest(client: LodgeClient, image: string | undefined, name: string, opts: CreateOpts): Promise<InstancesPost> {
  const body: InstancesPost = {
    name,
    type: opts.vm ? "virtual-machine" : "container",
    source: image === undefined ? { type: "none" } : await imageSource(client, image),
    config: parseKeyValues(opts.config, "config"),
    devices: deviceOverrides(opts.device),
    ephemeral: !!opts.ephemeral,
  };
  // As lxc: -s puts the root disk on that pool (the profile's root disk, overridden).
  if (opts.storage !== undefined) body.devices!.root = { type: "disk", path: "/", ...body.devices!.root, pool: opts.storage };
  // commander's --no-profiles sets `profiles: false`; -p adds names.
  if ((opts as { profiles?: boolean }).profiles === false) body.profiles = [];
  else if (opts.profile.length) body.profiles = opts.profile;
  if (opts.description !== undefined) body.description = opts.description;
  return body;
}

/**
 * `[remote:]alias-or-fingerprint` as an image source: a local image by fingerprint; one on an
 * image server as that server's address and protocol, which the daemon pulls (and caches)
 * while it creates the instance, as `lxc launch images:…` does.
 */
async function imageSource(client: LodgeClient, text: string): Promise<InstancesPost["source"]> {
  let name = text;
  if (text.includes(":")) {
    // Only then is the remote configuration read: a plain alias costs nothing extra.
    const { loadRemoteConfig, getRemote, isLocal } = await import("./remote-config.js");
    const { parseImageRef, looksLikeFingerprint } = await import("./image-ref.js");
    const cfg = await loadRemoteConfig();
    const ref = parseImageRef(text, cfg);
    const remote = getRemote(cfg, ref.remote);
    if (!ref.name) throw new UsageError(`No image in "${text}": name an alias or a fingerprint`);
    if (!isLocal(remote)) {
      const byFingerprint = looksLikeFingerprint(ref.name) && ref.name.length >= 12;
      return {
        type: "image",
        mode: "pull",
        server: remote.addr,
        protocol: remote.protocol,
        ...(byFingerprint ? { fingerprint: ref.name.toLowerCase() } : { alias: ref.name }),
      };
    }
    name = ref.name;
  }
  if (!name) throw new UsageError(`No image in "${text}": name an alias or a fingerprint`);
  const { resolveFingerprint } = await import("./image-ref.js");
  return { type: "image", fingerprint: await resolveFingerprint(client, name) };
}

export function verb(name: string): VerbModule {
  if (name !== "launch" && name !== "init") throw new Error(`instance-create: no verb "${name}"`);
  return { register: (program) => registerCreate(program, name) };
}
