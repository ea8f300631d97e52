/**
 * `lodge profile …`: list, show, create, copy, edit, get, set, unset, rename, delete, device …,
 * and add|remove|assign of profiles on instances. Writes read the profile with its ETag and
 * PUT it back with If-Match; the daemon checks every change against the instances using it.
 */
import type { Command } from "commander";
import type { Profile, ProfilePut } from "../api/profile.js";
import type { LodgeClient } from "../client/client.js";
import { runEditorLoop } from "./editor.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { parseSetArgs } from "./instance-args.js";
import { forEachName } from "./instance-ref.js";
import { printList, printObject, type Column } from "./output.js";
import { registerProfileAssign } from "./profile-assign.js";
import { registerProfileDevice } from "./profile-device.js";
import { fetchProfile, parseProfilePut, profilePut, profileUrl, PROFILE_WRITABLE, updateProfile } from "./profile-ref.js";
import { loadYaml } from "./yaml.js";

const COLUMNS: Column<Profile>[] = [
  { header: "NAME", value: (p) => p.name },
  { header: "DESCRIPTION", value: (p) => p.description ?? "" },
  { header: "USED BY", value: (p) => String(p.used_by?.length ?? 0) },
];

const HEADER = `### This is a YAML representation of the profile.
### Any line starting with a '#' will be ignored.
###
### Editable: ${PROFILE_WRITABLE.join(", ")} (name and used_by are ignored).
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const ch of process.stdin) chunks.push(ch as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function editProfile(c: LodgeClient, name: string): Promise<void> {
  const { profile, etag } = await fetchProfile(c, name);
  const put = async (body: ProfilePut) => c.put(profileUrl(name), { ...profilePut(profile), ...body }, { headers: etag ? { "If-Match": etag } : {} });
  if (!process.stdin.isTTY) return void (await put(await parseProfilePut(await readStdin())));
  const text = HEADER + (await loadYaml()).stringify(profile, { lineWidth: 0 });
  await runEditorLoop(text, async (t) => put(await parseProfilePut(t)), "profile.yaml");
}

export function register(program: Command): void {
  const profile = program.command("profile").description("Manage profiles: list, show, create, copy, edit, get, set, unset, rename, delete, device, add, remove, assign");

  profile
    .command("list")
    .alias("ls")
    .description("List profiles")
    .action(async (_opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const all = await withClient(g, (c) => c.get<Profile[]>("/1.0/profiles?recursion=1"));
      all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      await printList(COLUMNS, all, g.format);
    });

  profile
    .command("show")
    .description("Show a profile as YAML (json with --format json)")
    .argument("<profile>", "Profile name")
    .action(async (name: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const { profile: p } = await withClient(g, (c) => fetchProfile(c, name));
      await printObject(p, g.format === "json" ? "json" : "yaml");
    });

  profile
    .command("create")
    .description("Create a profile (its YAML may come on stdin)")
    .argument("<profile>", "Profile name")
    .option("--description <text>", "Profile description")
    .action(async (name: string, opts: { description?: string }, cmd: Command) => {
      let body: ProfilePut = {};
      if (!process.stdin.isTTY) {
        const text = await readStdin();
        if (text.trim()) body = await parseProfilePut(text);
      }
      if (opts.description !== undefined) body.description = opts.description;
      await withClient(globalsOf(cmd), (c) => c.post("/1.0/profiles", { name, ...body }));
      process.stdout.write(`Profile ${name} created\n`);
    });

  profile
    .command("copy")
    .alias("cp")
    .description("Copy a profile to a new name")
    .argument("<source>", "Profile to copy")
    .argument("<target>", "New profile name")
    .action(async (source: string, target: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), async (c) => {
        const { profile: p } = await fetchProfile(c, source);
        await c.post("/1.0/profiles", { name: target, ...profilePut(p) });
      });
    });

  profile
    .command("edit")
    .description("Edit a profile as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument("<profile>", "Profile name")
    .action(async (name: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => editProfile(c, name));
    });

  profile
    .command("get")
    .description("Print one config key of a profile")
    .argument("<profile>", "Profile name")
    .argument("<key>", "Config key")
    .action(async (name: string, key: string, _opts, cmd: Command) => {
      const { profile: p } = await withClient(globalsOf(cmd), (c) => fetchProfile(c, name));
      process.stdout.write((p.config?.[key] ?? "") + "\n");
    });

  profile
    .command("set")
    .description("Set config keys: lodge profile set PROFILE k=v [k=v…] (or PROFILE k v)")
    .argument("<profile>", "Profile name")
    .argument("<settings...>", "KEY=VALUE pairs, or KEY VALUE")
    .action(async (name: string, words: string[], _opts, cmd: Command) => {
      const settings = parseSetArgs(words);
      await withClient(globalsOf(cmd), (c) => updateProfile(c, name, (put) => Object.assign(put.config, settings)));
    });

  profile
    .command("unset")
    .description("Remove config keys from a profile")
    .argument("<profile>", "Profile name")
    .argument("<keys...>", "Config keys")
    .action(async (name: string, keys: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          for (const k of keys) {
            if (!(k in put.config)) throw new UsageError(`Config key "${k}" is not set in profile "${name}"`);
            delete put.config[k];
          }
        }),
      );
    });

  profile
    .command("rename")
    .alias("mv")
    .description("Rename a profile (instances using it follow)")
    .argument("<profile>", "Profile name")
    .argument("<new-name>", "New name")
    .action(async (name: string, target: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => c.post(profileUrl(name), { name: target }));
      process.stdout.write(`Profile ${name} renamed to ${target}\n`);
    });

  profile
    .command("delete")
    .alias("rm")
    .description("Delete profiles (not one in use, nor default)")
    .argument("<profiles...>", "Profile names")
    .action(async (names: string[], _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) =>
        forEachName(names, async (n) => {
          await c.delete(profileUrl(n));
          process.stdout.write(`Profile ${n} deleted\n`);
        }),
      );
    });

  registerProfileDevice(profile);
  registerProfileAssign(profile);
}
