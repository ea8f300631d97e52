/**
 * `lodge network …`: list, show, create, get, set, unset, edit, rename, delete, info,
 * list-leases, and attach|detach of networks to instances and profiles (network-attach.ts),
 * forward … (network-forward.ts). Writes read the network with its ETag and PUT it back with
 * If-Match; the daemon validates every key, naming the one it refuses.
 */
import { Option, type Command } from "commander";
import type { LodgeClient } from "../client/client.js";
import { readStdinText, runEditorLoop } from "./editor.js";
import { UsageError } from "./exit.js";
import { FORMATS, type Format } from "./format.js";
import { globalsOf, withClient } from "./globals.js";
import { parseKeyValues, parseSetArgs } from "./instance-args.js";
import { forEachName } from "./instance-ref.js";
import { registerNetworkAttach } from "./network-attach.js";
import { LEASE_COLUMNS, listedNetworks, NETWORK_COLUMNS, networkInfo, sortedLeases } from "./network-columns.js";
import { registerNetworkForward } from "./network-forward.js";
import { fetchNetwork, ifMatch, NETWORK_WRITABLE, networkPut, networkUrl, parseNetworkPut, updateNetwork } from "./network-ref.js";
import type { Network, NetworkLease, NetworkPut, NetworksPost, NetworkState } from "./network-types.js";
import { printList, printObject } from "./output.js";
import { loadYaml } from "./yaml.js";

const HEADER = `### This is a YAML representation of the network.
### Any line starting with a '#' will be ignored.
###
### Editable: ${NETWORK_WRITABLE.join(", ")} (name, type, managed, status and used_by are ignored).
`;

/** lxc's -f on list verbs; the global --format means the same. */
const formatOption = () => new Option("-f, --format <format>", "Output format").choices(FORMATS);

async function editNetwork(c: LodgeClient, name: string): Promise<void> {
  const { network, etag } = await fetchNetwork(c, name);
  if (!network.managed) throw new UsageError(`Network "${name}" is not managed by Lodge: only managed networks can be edited`);
  const put = async (body: NetworkPut) => c.put(networkUrl(name), { ...networkPut(network), ...body }, ifMatch(etag));
  if (!process.stdin.isTTY) return void (await put(await parseNetworkPut(await readStdinText())));
  const text = HEADER + (await loadYaml()).stringify(network, { lineWidth: 0 });
  await runEditorLoop(text, async (t) => put(await parseNetworkPut(t)), "network.yaml");
}

/** The POST /1.0/networks body: YAML from stdin (if any), then key=value words and flags. */
export function createRequest(name: string, words: readonly string[], opts: { type?: string; description?: string }, fromStdin: NetworkPut = {}): NetworksPost {
  const body: NetworksPost = { name, type: opts.type ?? "bridge", description: fromStdin.description ?? "", config: { ...fromStdin.config, ...parseKeyValues(words, "network setting") } };
  if (opts.description !== undefined) body.description = opts.description;
  return body;
}

export function register(program: Command): void {
  const network = program
    .command("network")
    .description("Manage networks: list, show, create, get, set, unset, edit, rename, delete, info, list-leases, attach, detach, forward");

  network
    .command("list")
    .alias("ls")
    .description("List networks (managed ones and the host's interfaces)")
    .addOption(formatOption())
    .action(async (opts: { format?: Format }, cmd: Command) => {
      const g = globalsOf(cmd);
      const all = await withClient(g, (c) => c.get<Network[]>("/1.0/networks?recursion=1"));
      await printList(NETWORK_COLUMNS, listedNetworks(all), opts.format ?? g.format);
    });

  network
    .command("show")
    .description("Show a network as YAML (json with --format json)")
    .argument("<network>", "Network name")
    .action(async (name: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const { network: n } = await withClient(g, (c) => fetchNetwork(c, name));
      await printObject(n, g.format === "json" ? "json" : "yaml");
    });

  network
    .command("create")
    .description("Create a managed network: lodge network create NAME [key=value…] (its YAML may come on stdin)")
    .argument("<network>", "Network name (also the bridge's name on the host, at most 15 characters)")
    .argument("[settings...]", "key=value pairs, e.g. ipv4.address=auto ipv6.address=none")
    .option("-t, --type <type>", "Network type", "bridge")
    .option("--description <text>", "Network description")
    .action(async (name: string, words: string[], opts: { type?: string; description?: string }, cmd: Command) => {
      let fromStdin: NetworkPut = {};
      if (!process.stdin.isTTY) {
        const text = await readStdinText();
        if (text.trim()) fromStdin = await parseNetworkPut(text);
      }
      const body = createRequest(name, words, opts, fromStdin);
      await withClient(globalsOf(cmd), (c) => c.post("/1.0/networks", body));
      process.stdout.write(`Network ${name} created\n`);
    });

  network
    .command("get")
    .description("Print one config key of a network")
    .argument("<network>", "Network name")
    .argument("<key>", "Config key")
    .action(async (name: string, key: string, _opts, cmd: Command) => {
      const { network: n } = await withClient(globalsOf(cmd), (c) => fetchNetwork(c, name));
      process.stdout.write((n.config?.[key] ?? "") + "\n");
    });

  network
    .command("set")
    .description("Set config keys: lodge network set NETWORK k=v [k=v…] (or NETWORK k v)")
    .argument("<network>", "Network name")
    .argument("<settings...>", "KEY=VALUE pairs, or KEY VALUE")
    .action(async (name: string, words: string[], _opts, cmd: Command) => {
      const settings = parseSetArgs(words);
      await withClient(globalsOf(cmd), (c) => updateNetwork(c, name, (put) => Object.assign(put.config, settings)));
    });

  network
    .command("unset")
    .description("Remove config keys from a network")
    .argument("<network>", "Network name")
    .argument("<keys...>", "Config keys")
    .action(async (name: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateNetwork(c, name, (put) => {
          for (const k of keys) {
            if (!(k in put.config)) throw new UsageError(`Config key "${k}" is not set on network "${name}"`);
            delete put.config[k];
          }
        }),
      );
    });

  network
    .command("edit")
    .description("Edit a network as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument("<network>", "Network name")
    .action(async (name: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => editNetwork(c, name));
    });

  network
    .command("rename")
    .alias("mv")
    .description("Rename a network (not one in use)")
    .argument("<network>", "Network name")
    .argument("<new-name>", "New name")
    .action(async (name: string, target: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => c.post(networkUrl(name), { name: target }));
      process.stdout.write(`Network ${name} renamed to ${target}\n`);
    });

  network
    .command("delete")
    .alias("rm")
    .description("Delete networks (not one in use)")
    .argument("<networks...>", "Network names")
    .action(async (names: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        forEachName(names, async (n) => {
          await c.delete(networkUrl(n));
          process.stdout.write(`Network ${n} deleted\n`);
        }),
      );
    });

  network
    .command("info")
    .description("Show a network's state: addresses, MTU, counters (the whole object with --format json|yaml)")
    .argument("<network>", "Network name")
    .action(async (name: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const state = await withClient(g, (c) => c.get<NetworkState>(networkUrl(name, "/state")));
      if (g.format === "json" || g.format === "yaml") await printObject(state, g.format);
      else process.stdout.write(networkInfo(name, state));
    });

  network
    .command("list-leases")
    .description("List a network's DHCP leases")
    .argument("<network>", "Network name")
    .addOption(formatOption())
    .action(async (name: string, opts: { format?: Format }, cmd: Command) => {
      const g = globalsOf(cmd);
      const leases = await withClient(g, (c) => c.get<NetworkLease[]>(networkUrl(name, "/leases")));
      await printList(LEASE_COLUMNS, sortedLeases(leases ?? []), opts.format ?? g.format);
    });

  registerNetworkAttach(network);
  registerNetworkForward(network);
}
