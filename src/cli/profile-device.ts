/** `lodge profile device add|remove|list|show|set|unset`: a profile's devices. */
import type { Command } from "commander";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { deviceSpec, parseKeyValues } from "./instance-args.js";
import { printObject } from "./output.js";
import { fetchProfile, updateProfile } from "./profile-ref.js";

export function registerProfileDevice(profile: Command): void {
  const device = profile.command("device").description("Manage a profile's devices: add, remove, list, show, set, unset");

  device
    .command("add")
    .description("Add a device: lodge profile device add PROFILE DEVICE TYPE [key=value…]")
    .argument("<profile>", "Profile name")
    .argument("<device>", "Device name")
    .argument("<type>", "Device type: disk, nic, proxy, unix-char, unix-block, none")
    .argument("[settings...]", "key=value pairs, e.g. source=/srv path=/mnt")
    .action(async (name: string, dev: string, type: string, words: string[], _opts, cmd: Command) => {
      const spec = deviceSpec(type, words);
      await withClient(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          if (dev in put.devices) throw new UsageError(`Device "${dev}" already exists in profile "${name}"`);
          put.devices[dev] = spec;
        }),
      );
      process.stdout.write(`Device ${dev} added to ${name}\n`);
    });

  device
    .command("remove")
    .alias("rm")
    .description("Remove devices from a profile")
    .argument("<profile>", "Profile name")
    .argument("<devices...>", "Device names")
    .action(async (name: string, devs: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          for (const dev of devs) {
            if (!(dev in put.devices)) throw new UsageError(`Device "${dev}" does not exist in profile "${name}"`);
            delete put.devices[dev];
          }
        }),
      );
      for (const dev of devs) process.stdout.write(`Device ${dev} removed from ${name}\n`);
    });

  device
    .command("list")
    .alias("ls")
    .description("List a profile's devices")
    .argument("<profile>", "Profile name")
    .action(async (name: string, _opts, cmd: Command) => {
      const { profile } = await withClient(globalsOf(cmd), (c) => fetchProfile(c, name));
      for (const dev of Object.keys(profile.devices ?? {}).sort()) process.stdout.write(dev + "\n");
    });

  device
    .command("show")
    .description("Show a profile's devices as YAML")
    .argument("<profile>", "Profile name")
    .action(async (name: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const { profile } = await withClient(g, (c) => fetchProfile(c, name));
      await printObject(profile.devices ?? {}, g.format === "json" ? "json" : "yaml");
    });

  device
    .command("set")
    .description("Set keys of a profile's device: lodge profile device set PROFILE DEVICE k=v…")
    .argument("<profile>", "Profile name")
    .argument("<device>", "Device name")
    .argument("<settings...>", "key=value pairs")
    .action(async (name: string, dev: string, words: string[], _opts, cmd: Command) => {
      const settings = parseKeyValues(words, "device setting");
      await withClient(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          const d = put.devices[dev];
          if (!d) throw new UsageError(`Device "${dev}" does not exist in profile "${name}"`);
          put.devices[dev] = { ...d, ...settings };
        }),
      );
    });

  device
    .command("unset")
    .description("Remove keys of a profile's device")
    .argument("<profile>", "Profile name")
    .argument("<device>", "Device name")
    .argument("<keys...>", "Keys")
    .action(async (name: string, dev: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          const d = put.devices[dev];
          if (!d) throw new UsageError(`Device "${dev}" does not exist in profile "${name}"`);
          for (const k of keys) {
            if (!(k in d)) throw new UsageError(`Key "${k}" is not set on device "${dev}" of profile "${name}"`);
            delete d[k];
          }
        }),
      );
    });
}
