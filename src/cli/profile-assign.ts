/** `lodge profile add|remove|assign INSTANCE PROFILE[,PROFILE…]`: an instance's profile list. */
import type { Command } from "commander";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { updateInstance } from "./instance-ref.js";
import { profileNames } from "./profile-ref.js";

export function registerProfileAssign(profile: Command): void {
  profile
    .command("add")
    .description("Add profiles to an instance (after those it has)")
    .argument("<instance>", "Instance name")
    .argument("<profiles>", "PROFILE[,PROFILE…]")
    .action(async (name: string, list: string, _opts, cmd: Command) => {
      const names = profileNames(list);
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put) => {
          for (const p of names) {
            if (put.profiles.includes(p)) throw new UsageError(`Profile "${p}" is already applied to instance "${name}"`);
            put.profiles.push(p);
          }
        }),
      );
      process.stdout.write(`Profile ${names.join(",")} added to ${name}\n`);
    });

  profile
    .command("remove")
    .description("Remove profiles from an instance")
    .argument("<instance>", "Instance name")
    .argument("<profiles>", "PROFILE[,PROFILE…]")
    .action(async (name: string, list: string, _opts, cmd: Command) => {
      const names = profileNames(list);
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put) => {
          for (const p of names) if (!put.profiles.includes(p)) throw new UsageError(`Profile "${p}" is not applied to instance "${name}"`);
          put.profiles = put.profiles.filter((p) => !names.includes(p));
        }),
      );
      process.stdout.write(`Profile ${names.join(",")} removed from ${name}\n`);
    });

  profile
    .command("assign")
    .alias("apply")
    .description("Set an instance's profiles (in order; \"\" for none)")
    .argument("<instance>", "Instance name")
    .argument("<profiles>", "PROFILE[,PROFILE…], or \"\" for none")
    .action(async (name: string, list: string, _opts, cmd: Command) => {
      const names = list === "" ? [] : profileNames(list);
      await withClient(globalsOf(cmd), (c) => updateInstance(c, name, (put) => void (put.profiles = names)));
      process.stdout.write(names.length ? `Profiles ${names.join(",")} applied to ${name}\n` : `All profiles removed from ${name}\n`);
    });
}
