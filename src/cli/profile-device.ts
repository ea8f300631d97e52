/** `lodge profile device add|remove|list|show|set|unset`: a profile's devices. */
import type { Command } from "commander";
import { registerDeviceVerbs } from "./device-verbs.js";
import { fetchProfile, updateProfile } from "./profile-ref.js";

export function registerProfileDevice(profile: Command): void {
  registerDeviceVerbs(profile, {
    noun: "profile",
    on: "in profile",
    usage: "lodge profile device",
    async read(c, name) {
      const { profile: p } = await fetchProfile(c, name);
      return { own: p.devices ?? {}, expanded: p.devices ?? {} };
    },
    update: (c, name, change) => updateProfile(c, name, (put) => change(put.devices, put.devices)),
  });
}
