/**
 * The `device add|remove|list|show|get|set|unset` verbs, shared by the two things that hold devices:
 * an instance (`lodge config device`) and a profile (`lodge profile device`). The holder says how
 * its devices are read and changed; an instance also shows the devices its profiles give it,
 * and a change to one of those is made on the instance (an override), as lxc does.
 */
import type { Command } from "commander";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { deviceSpec, parseKeyValues } from "./instance-args.js";
import { printObject } from "./output.js";

type Devices = Record<string, Record<string, string>>;

export interface DeviceHolder {
  /** "instance" or "profile": in help texts and errors. */
  noun: string;
  /** How errors place a device: "on instance" / "in profile". */
  on: string;
  /** The command that leads here, for help texts: "lodge config device". */
  usage: string;
  /** Its own devices, and those it ends up with (with profiles'; the same for a profile). */
  read(c: LodgeClient, name: string): Promise<{ own: Devices; expanded: Devices }>;
  /** Changes its own devices (read, change, written back guarded by the ETag). */
  update(c: LodgeClient, name: string, change: (own: Devices, expanded: Devices) => void): Promise<void>;
}

export function registerDeviceVerbs(parent: Command, h: DeviceHolder): void {
  const device = parent.command("device").description(`Manage a${h.noun === "instance" ? "n" : ""} ${h.noun}'s devices: add, remove, list, show, get, set, unset`);
  const missing = (dev: string, name: string) => new UsageError(`Device "${dev}" does not exist ${h.on} "${name}"`);

  device
    .command("add")
    .description(`Add a device: ${h.usage} add ${h.noun.toUpperCase()} DEVICE TYPE [key=value…]`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .argument("<device>", "Device name")
    .argument("<type>", "Device type: disk, nic, proxy, unix-char, unix-block, none")
    .argument("[settings...]", "key=value pairs, e.g. source=/srv path=/mnt")
    .action(async (name: string, dev: string, type: string, words: string[], _opts, cmd: Command) => {
      const spec = deviceSpec(type, words);
      await withClient(globalsOf(cmd), (c) =>
        h.update(c, name, (own) => {
          if (dev in own) throw new UsageError(`Device "${dev}" already exists ${h.on} "${name}"`);
          own[dev] = spec;
        }),
      );
      process.stdout.write(`Device ${dev} added to ${name}\n`);
    });

  device
    .command("remove")
    .alias("rm")
    .description(`Remove devices from a${h.noun === "instance" ? "n" : ""} ${h.noun}`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .argument("<devices...>", "Device names")
    .action(async (name: string, devs: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        h.update(c, name, (own, expanded) => {
          for (const dev of devs) {
            if (dev in own) delete own[dev];
            else if (dev in expanded) throw new UsageError(`Device "${dev}" comes from a profile: override it on the instance or change the profile`);
            else throw missing(dev, name);
          }
        }),
      );
      for (const dev of devs) process.stdout.write(`Device ${dev} removed from ${name}\n`);
    });

  device
    .command("list")
    .alias("ls")
    .description(`List a${h.noun === "instance" ? "n instance's devices (with those from profiles)" : " profile's devices"}`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .action(async (name: string, _opts, cmd: Command) => {
      const { expanded } = await withClient(globalsOf(cmd), (c) => h.read(c, name));
      for (const dev of Object.keys(expanded).sort()) process.stdout.write(dev + "\n");
    });

  device
    .command("show")
    .description(`Show a${h.noun === "instance" ? "n instance's own" : " profile's"} devices as YAML`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .action(async (name: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const { own } = await withClient(g, (c) => h.read(c, name));
      await printObject(own, g.format === "json" ? "json" : "yaml");
    });

  device
    .command("get")
    .description(`Print the value of a device key: ${h.usage} get ${h.noun.toUpperCase()} DEVICE KEY`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .argument("<device>", "Device name")
    .argument("<key>", "Key")
    .action(async (name: string, dev: string, key: string, _opts, cmd: Command) => {
      const { expanded } = await withClient(globalsOf(cmd), (c) => h.read(c, name));
      const d = expanded[dev];
      if (!d) throw missing(dev, name);
      // As lxc: an unset key prints an empty line.
      process.stdout.write(`${d[key] ?? ""}\n`);
    });

  device
    .command("set")
    .description(`Set keys of a device: ${h.usage} set ${h.noun.toUpperCase()} DEVICE k=v…`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .argument("<device>", "Device name")
    .argument("<settings...>", "key=value pairs")
    .action(async (name: string, dev: string, words: string[], _opts, cmd: Command) => {
      const settings = parseKeyValues(words, "device setting");
      await withClient(globalsOf(cmd), (c) =>
        h.update(c, name, (own, expanded) => {
          // A device from a profile is overridden on the instance, as lxc does.
          const base = own[dev] ?? expanded[dev];
          if (!base) throw missing(dev, name);
          own[dev] = { ...base, ...settings };
        }),
      );
    });

  device
    .command("unset")
    .description(`Remove keys of a device`)
    .argument(`<${h.noun}>`, `${capital(h.noun)} name`)
    .argument("<device>", "Device name")
    .argument("<keys...>", "Keys")
    .action(async (name: string, dev: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        h.update(c, name, (own) => {
          const d = own[dev];
          if (!d) throw missing(dev, name);
          for (const k of keys) {
            if (!(k in d)) throw new UsageError(`Key "${k}" is not set on device "${dev}" ${h.on} "${name}"`);
            delete d[k];
          }
        }),
      );
    });
}

function capital(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}
