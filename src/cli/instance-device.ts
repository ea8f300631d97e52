/**
 * `lodge config device add|remove|list|show|set|unset`: an instance's own devices (those from
 * profiles are listed, and overridden on the instance when set; they are changed on the profile).
 */
import type { Command } from "commander";
import { registerDeviceVerbs } from "./device-verbs.js";
import { fetchInstance, updateInstance } from "./instance-ref.js";

export function registerDevice(config: Command): void {
  registerDeviceVerbs(config, {
    noun: "instance",
    on: "on instance",
    usage: "lodge config device",
    async read(c, name) {
      const { instance } = await fetchInstance(c, name);
      return { own: instance.devices ?? {}, expanded: instance.expanded_devices ?? instance.devices ?? {} };
    },
    update: (c, name, change) => updateInstance(c, name, (put, current) => change(put.devices, current.expanded_devices ?? {})),
  });
}
