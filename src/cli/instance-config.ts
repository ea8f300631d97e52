/**
 * `lodge config get|set|unset|show|edit NAME …` and `config device …`. Every write reads the
 * instance with its ETag and PUTs it back with If-Match, so a concurrent change is refused
 * rather than overwritten; unknown keys are refused by the daemon, naming the key.
 */
import type { Command } from "commander";
import type { Instance, InstancePut } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { parseEditedMap, runEditorLoop } from "./editor.js";
import { loadYaml } from "./yaml.js";
import { globalsOf, withClient } from "./globals.js";
import { parseSetArgs } from "./instance-args.js";
import { registerDevice } from "./instance-device.js";
import { fetchInstance, instanceUrl, runOperation, updateInstance, writable } from "./instance-ref.js";
import { printObject } from "./output.js";
import type { VerbModule } from "./program.js";

const WRITABLE = ["architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description"] as const;

/** What `config show` prints: the writable fields, expanded (profiles applied) with --expanded. */
export function showable(i: Instance, expanded: boolean): InstancePut {
  const put = writable(i);
  if (expanded) {
    put.config = { ...i.expanded_config };
    put.devices = structuredClone(i.expanded_devices ?? {});
  }
  return put;
}

/** Parses edited YAML into a PUT body; read-only keys are refused by name. Values become strings. */
export async function parseInstancePut(text: string): Promise<Partial<InstancePut>> {
  const put = await parseEditedMap(text, "instance", WRITABLE);
  const strings = (m: unknown) => Object.fromEntries(Object.entries((m ?? {}) as Record<string, unknown>).map(([k, v]) => [k, v === null ? "" : String(v)]));
  if (put.config !== undefined) put.config = strings(put.config);
  if (put.devices !== undefined) put.devices = Object.fromEntries(Object.entries((put.devices ?? {}) as Record<string, unknown>).map(([k, v]) => [k, strings(v)]));
  return put as Partial<InstancePut>;
}

const HEADER = `### This is a YAML representation of the instance's editable fields.
### Any line starting with a '#' will be ignored.
###
### Editable: ${WRITABLE.join(", ")}.
`;

async function editInstance(c: LodgeClient, name: string): Promise<void> {
  const { instance, etag } = await fetchInstance(c, name);
  const put = async (body: Partial<InstancePut>) =>
    runOperation(c, () => c.put<Operation>(instanceUrl(name), { ...writable(instance), ...body }, { headers: etag ? { "If-Match": etag } : {} }));
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const ch of process.stdin) chunks.push(ch as Buffer);
    await put(await parseInstancePut(Buffer.concat(chunks).toString("utf8")));
    return;
  }
  await runEditorLoop(HEADER + (await loadYaml()).stringify(writable(instance), { lineWidth: 0 }), async (text) => put(await parseInstancePut(text)));
}

function registerConfig(program: Command): void {
  const config = program.command("config").description("Manage instance configuration: get, set, unset, show, edit, device");

  config
    .command("get")
    .description("Print one config key of an instance")
    .argument("<instance>", "Instance name")
    .argument("<key>", "Config key")
    .option("-e, --expanded", "Include keys from profiles")
    .action(async (name: string, key: string, opts: { expanded?: boolean }, cmd: Command) => {
      const { instance } = await withClient(globalsOf(cmd), (c) => fetchInstance(c, name));
      const value = (opts.expanded ? instance.expanded_config : instance.config)?.[key] ?? "";
      process.stdout.write(value + "\n");
    });

  config
    .command("set")
    .description("Set config keys: lodge config set NAME k=v [k=v…] (or NAME k v)")
    .argument("<instance>", "Instance name")
    .argument("<settings...>", "KEY=VALUE pairs, or KEY VALUE")
    .action(async (name: string, words: string[], _opts, cmd: Command) => {
      const settings = parseSetArgs(words);
      await withClient(globalsOf(cmd), (c) => updateInstance(c, name, (put) => Object.assign(put.config, settings)));
    });

  config
    .command("unset")
    .description("Remove config keys")
    .argument("<instance>", "Instance name")
    .argument("<keys...>", "Config keys")
    .action(async (name: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put) => {
          for (const k of keys) {
            if (!(k in put.config)) throw new UsageError(`Config key "${k}" is not set on instance "${name}"`);
            delete put.config[k];
          }
        }),
      );
    });

  config
    .command("show")
    .description("Show an instance's editable configuration as YAML")
    .argument("<instance>", "Instance name")
    .option("-e, --expanded", "Show the configuration with profiles applied")
    .action(async (name: string, opts: { expanded?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const { instance } = await withClient(g, (c) => fetchInstance(c, name));
      await printObject(showable(instance, !!opts.expanded), g.format === "json" ? "json" : "yaml");
    });

  config
    .command("edit")
    .description("Edit an instance's configuration as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument("<instance>", "Instance name")
    .action(async (name: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => editInstance(c, name));
    });

  registerDevice(config);
}

export function verb(name: string): VerbModule {
  if (name !== "config") throw new Error(`instance-config: no verb "${name}"`);
  return { register: registerConfig };
}
