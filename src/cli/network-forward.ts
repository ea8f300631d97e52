/**
 * `lodge network forward …`: a network's forwards (traffic to a listen address sent on to
 * instance addresses): list, show, create, get, set, unset, edit, delete, and port add|remove.
 * Every change reads the forward with its ETag and PUTs it back with If-Match.
 */
import { Option, type Command } from "commander";
import type { LodgeClient } from "../client/client.js";
import { readStdinText, runEditorLoop } from "./editor.js";
import { UsageError } from "./exit.js";
import { FORMATS, type Format } from "./format.js";
import { globalsOf, withClient } from "./globals.js";
import { parseKeyValues, parseSetArgs } from "./instance-args.js";
import { naturalCompare } from "./network-columns.js";
import { fetchForward, FORWARD_WRITABLE, forwardPut, forwardUrl, ifMatch, networkUrl, parseForwardPut, updateForward } from "./network-ref.js";
import type { NetworkForward, NetworkForwardPort, NetworkForwardPut, NetworkForwardsPost } from "./network-types.js";
import { printList, printObject, type Column } from "./output.js";
import { loadYaml } from "./yaml.js";

export const FORWARD_COLUMNS: Column<NetworkForward>[] = [
  { header: "LISTEN ADDRESS", value: (f) => f.listen_address },
  { header: "DESCRIPTION", value: (f) => f.description ?? "" },
  { header: "DEFAULT TARGET ADDRESS", value: (f) => f.config?.target_address ?? "" },
  { header: "PORTS", value: (f) => String(f.ports?.length ?? 0) },
];

export const sortedForwards = (all: readonly NetworkForward[]) => [...all].sort((a, b) => naturalCompare(a.listen_address, b.listen_address));

const PROTOCOLS = ["tcp", "udp"];

/** `port add`'s words after the listen address: PROTOCOL LISTEN_PORTS TARGET_ADDRESS [TARGET_PORTS]. */
export function portFromArgs(protocol: string, listenPorts: string, targetAddress: string, targetPorts?: string): NetworkForwardPort {
  if (!PROTOCOLS.includes(protocol)) throw new UsageError(`Invalid protocol "${protocol}": tcp or udp`);
  const ports = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
  if (!ports.test(listenPorts)) throw new UsageError(`Invalid listen ports "${listenPorts}": ports and ranges, e.g. 80,443,8000-8010`);
  if (targetPorts !== undefined && !ports.test(targetPorts)) throw new UsageError(`Invalid target ports "${targetPorts}": ports and ranges, e.g. 8080 or 8000-8010`);
  const port: NetworkForwardPort = { protocol, listen_port: listenPorts, target_address: targetAddress };
  if (targetPorts !== undefined) port.target_port = targetPorts;
  return port;
}

/**
 * The ports left after `port remove [PROTOCOL] [LISTEN_PORTS]`: those matching go; more than one
 * match needs `force`, none is an error (as lxc).
 */
export function removePorts(ports: readonly NetworkForwardPort[], protocol: string | undefined, listenPorts: string | undefined, force: boolean): NetworkForwardPort[] {
  const matches = (p: NetworkForwardPort) => (protocol === undefined || p.protocol === protocol) && (listenPorts === undefined || p.listen_port === listenPorts);
  const n = ports.filter(matches).length;
  if (n === 0) throw new UsageError("No matching port(s) found");
  if (n > 1 && !force) throw new UsageError(`${n} ports match: use --force to remove them all`);
  return ports.filter((p) => !matches(p));
}

const HEADER = `### This is a YAML representation of the network forward.
### Any line starting with a '#' will be ignored.
###
### Editable: ${FORWARD_WRITABLE.join(", ")} (listen_address is ignored).
### Each port: protocol (tcp, udp), listen_port, target_address, and optionally target_port, description.
`;

async function editForward(c: LodgeClient, network: string, listen: string): Promise<void> {
  const { forward, etag } = await fetchForward(c, network, listen);
  const put = async (body: NetworkForwardPut) => c.put(forwardUrl(network, listen), { ...forwardPut(forward), ...body }, ifMatch(etag));
  if (!process.stdin.isTTY) return void (await put(await parseForwardPut(await readStdinText())));
  const text = HEADER + (await loadYaml()).stringify(forward, { lineWidth: 0 });
  await runEditorLoop(text, async (t) => put(await parseForwardPut(t)), "forward.yaml");
}

export function registerNetworkForward(network: Command): void {
  const forward = network.command("forward").description("Manage network forwards: list, show, create, get, set, unset, edit, delete, port");
  const net = ["<network>", "Network name"] as const;
  const listen = ["<listen-address>", "Listen address of the forward"] as const;

  forward
    .command("list")
    .alias("ls")
    .description("List a network's forwards")
    .argument(...net)
    .addOption(new Option("-f, --format <format>", "Output format").choices(FORMATS))
    .action(async (name: string, opts: { format?: Format }, cmd: Command) => {
      const g = globalsOf(cmd);
      const all = await withClient(g, (c) => c.get<NetworkForward[]>(networkUrl(name, "/forwards?recursion=1")));
      await printList(FORWARD_COLUMNS, sortedForwards(all ?? []), opts.format ?? g.format);
    });

  forward
    .command("show")
    .description("Show a network forward as YAML (json with --format json)")
    .argument(...net)
    .argument(...listen)
    .action(async (name: string, addr: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const { forward: f } = await withClient(g, (c) => fetchForward(c, name, addr));
      await printObject(f, g.format === "json" ? "json" : "yaml");
    });

  forward
    .command("create")
    .description("Create a network forward: lodge network forward create NETWORK LISTEN_ADDRESS [key=value…] (its YAML may come on stdin)")
    .argument(...net)
    .argument(...listen)
    .argument("[settings...]", "key=value pairs, e.g. target_address=10.0.0.2 (the default target)")
    .option("--description <text>", "Forward description")
    .action(async (name: string, addr: string, words: string[], opts: { description?: string }, cmd: Command) => {
      let body: NetworkForwardsPost = { listen_address: addr, description: "", config: {}, ports: [] };
      if (!process.stdin.isTTY) {
        const text = await readStdinText();
        if (text.trim()) body = { ...body, ...(await parseForwardPut(text)), listen_address: addr };
      }
      body.config = { ...body.config, ...parseKeyValues(words, "forward setting") };
      if (opts.description !== undefined) body.description = opts.description;
      await withClient(globalsOf(cmd), (c) => c.post(networkUrl(name, "/forwards"), body));
      process.stdout.write(`Network forward ${addr} created\n`);
    });

  forward
    .command("get")
    .description("Print one config key of a network forward")
    .argument(...net)
    .argument(...listen)
    .argument("<key>", "Config key")
    .action(async (name: string, addr: string, key: string, _opts, cmd: Command) => {
      const { forward: f } = await withClient(globalsOf(cmd), (c) => fetchForward(c, name, addr));
      process.stdout.write((f.config?.[key] ?? "") + "\n");
    });

  forward
    .command("set")
    .description("Set config keys of a network forward: … set NETWORK LISTEN_ADDRESS k=v [k=v…]")
    .argument(...net)
    .argument(...listen)
    .argument("<settings...>", "KEY=VALUE pairs, or KEY VALUE")
    .action(async (name: string, addr: string, words: string[], _opts, cmd: Command) => {
      const settings = parseSetArgs(words);
      await withClient(globalsOf(cmd), (c) => updateForward(c, name, addr, (put) => Object.assign(put.config, settings)));
    });

  forward
    .command("unset")
    .description("Remove config keys from a network forward")
    .argument(...net)
    .argument(...listen)
    .argument("<keys...>", "Config keys")
    .action(async (name: string, addr: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateForward(c, name, addr, (put) => {
          for (const k of keys) {
            if (!(k in put.config)) throw new UsageError(`Config key "${k}" is not set on network forward "${addr}"`);
            delete put.config[k];
          }
        }),
      );
    });

  forward
    .command("edit")
    .description("Edit a network forward as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument(...net)
    .argument(...listen)
    .action(async (name: string, addr: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => editForward(c, name, addr));
    });

  forward
    .command("delete")
    .alias("rm")
    .description("Delete a network forward")
    .argument(...net)
    .argument(...listen)
    .action(async (name: string, addr: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => c.delete(forwardUrl(name, addr)));
      process.stdout.write(`Network forward ${addr} deleted\n`);
    });

  const port = forward.command("port").description("Manage the ports of a network forward: add, remove");

  port
    .command("add")
    .description("Add ports to a forward: … port add NETWORK LISTEN_ADDRESS PROTOCOL LISTEN_PORTS TARGET_ADDRESS [TARGET_PORTS]")
    .argument(...net)
    .argument(...listen)
    .argument("<protocol>", "tcp or udp")
    .argument("<listen-ports>", "Ports and ranges on the listen address, e.g. 80,443 or 8000-8010")
    .argument("<target-address>", "Address to send the traffic to")
    .argument("[target-ports]", "Target ports (default: the same as the listen ports)")
    .option("--description <text>", "Port description")
    .action(async (name: string, addr: string, protocol: string, ports: string, target: string, targetPorts: string | undefined, opts: { description?: string }, cmd: Command) => {
      const p = portFromArgs(protocol, ports, target, targetPorts);
      if (opts.description !== undefined) p.description = opts.description;
      await withClient(globalsOf(cmd), (c) => updateForward(c, name, addr, (put) => void put.ports.push(p)));
    });

  port
    .command("remove")
    .alias("rm")
    .description("Remove ports from a forward, by protocol and listen ports (--force when several match)")
    .argument(...net)
    .argument(...listen)
    .argument("[protocol]", "tcp or udp")
    .argument("[listen-ports]", "Listen ports as they were added, e.g. 80,443")
    .option("--force", "Remove all the ports that match")
    .action(async (name: string, addr: string, protocol: string | undefined, ports: string | undefined, opts: { force?: boolean }, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => updateForward(c, name, addr, (put) => void (put.ports = removePorts(put.ports, protocol, ports, !!opts.force))));
    });
}
