/**
 * `lodge config device add|remove|list|show|set|unset`: an instance's own devices (those from
 * profiles are listed by `show --expanded`, and are changed on the profile, as lxc says).
 */
import type { Command } from "commander";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { deviceSpec, parseKeyValues } from "./instance-args.js";
import { fetchInstance, updateInstance } from "./instance-ref.js";
import { printObject } from "./output.js";

export function registerDevice(config: Command): void {
  const device = config.command("device").description("Manage an instance's devices: add, remove, list, show, set, unset");

  device
    .command("add")
    .description("Add a device: lodge config device add NAME DEVICE TYPE [key=value…]")
    .argument("<instance>", "Instance name")
    .argument("<device>", "Device name")
    .argument("<type>", "Device type: disk, nic, proxy, unix-char, unix-block, none")
    .argument("[settings...]", "key=value pairs, e.g. source=/srv path=/mnt")
    .action(async (name: string, dev: string, type: string, words: string[], _opts, cmd: Command) => {
      const spec = deviceSpec(type, words);
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put) => {
          if (dev in put.devices) throw new UsageError(`Device "${dev}" already exists on instance "${name}"`);
          put.devices[dev] = spec;
        }),
      );
      process.stdout.write(`Device ${dev} added to ${name}\n`);
    });

  device
    .command("remove")
    .alias("rm")
    .description("Remove devices from an instance")
    .argument("<instance>", "Instance name")
    .argument("<devices...>", "Device names")
    .action(async (name: string, devs: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put, current) => {
          for (const dev of devs) {
            if (dev in put.devices) delete put.devices[dev];
            else if (current.expanded_devices && dev in current.expanded_devices)
              throw new UsageError(`Device "${dev}" comes from a profile: override it on the instance or change the profile`);
            else throw new UsageError(`Device "${dev}" does not exist on instance "${name}"`);
          }
        }),
      );
      for (const dev of devs) process.stdout.write(`Device ${dev} removed from ${name}\n`);
    });

  device
    .command("list")
    .alias("ls")
    .description("List an instance's devices (with those from profiles)")
    .argument("<instance>", "Instance name")
    .action(async (name: string, _opts, cmd: Command) => {
      const { instance } = await withClient(globalsOf(cmd), (c) => fetchInstance(c, name));
      for (const dev of Object.keys(instance.expanded_devices ?? instance.devices ?? {}).sort()) process.stdout.write(dev + "\n");
    });

  device
    .command("show")
    .description("Show an instance's own devices as YAML")
    .argument("<instance>", "Instance name")
    .action(async (name: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const { instance } = await withClient(g, (c) => fetchInstance(c, name));
      await printObject(instance.devices ?? {}, g.format === "json" ? "json" : "yaml");
    });

  device
    .command("set")
    .description("Set keys of an instance's device: lodge config device set NAME DEVICE k=v…")
    .argument("<instance>", "Instance name")
    .argument("<device>", "Device name")
    .argument("<settings...>", "key=value pairs")
    .action(async (name: string, dev: string, words: string[], _opts, cmd: Command) => {
      const settings = parseKeyValues(words, "device setting");
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put, current) => {
          // A profile device is overridden on the instance, as lxc does.
          const base = put.devices[dev] ?? current.expanded_devices?.[dev];
          if (!base) throw new UsageError(`Device "${dev}" does not exist on instance "${name}"`);
          put.devices[dev] = { ...base, ...settings };
        }),
      );
    });

  device
    .command("unset")
    .description("Remove keys of an instance's device")
    .argument("<instance>", "Instance name")
    .argument("<device>", "Device name")
    .argument("<keys...>", "Keys")
    .action(async (name: string, dev: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put) => {
          const d = put.devices[dev];
          if (!d) throw new UsageError(`Device "${dev}" does not exist on instance "${name}"`);
          for (const k of keys) delete d[k];
        }),
      );
    });
}
