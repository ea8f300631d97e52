/** `lodge image alias create|delete|list|rename`, on /1.0/images/aliases. */
import type { Command } from "commander";
import type { ImageAliasEntry } from "../images/types.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { localRemote, parseImageRef, resolveFingerprint } from "./image-ref.js";
import { printList, type Column } from "./output.js";
import { loadRemoteConfig } from "./remote-config.js";

const COLUMNS: Column<ImageAliasEntry>[] = [
  { header: "ALIAS", value: (a) => a.name },
  { header: "FINGERPRINT", value: (a) => a.target.slice(0, 12) },
  { header: "TYPE", value: (a) => (a.type || "container").toUpperCase() },
  { header: "DESCRIPTION", value: (a) => a.description },
];

/** A local alias name from `[local:]name`. */
async function aliasName(text: string, what: string): Promise<string> {
  const cfg = await loadRemoteConfig();
  const ref = parseImageRef(text, cfg);
  localRemote(ref, cfg, what);
  if (!ref.name) throw new UsageError(`No alias name in "${text}"`);
  return ref.name;
}

const aliasPath = (name: string) => `/1.0/images/aliases/${encodeURIComponent(name)}`;

export function registerAlias(image: Command): void {
  const alias = image.command("alias").description("Manage image aliases");

  alias
    .command("create")
    .description("Create an alias for an image")
    .argument("<alias>", "[local:]alias name")
    .argument("<image>", "Alias or fingerprint (prefix) of the image")
    .option("--description <text>", "Alias description", "")
    .action(async (aliasText: string, target: string, opts: { description: string }, cmd: Command) => {
      const name = await aliasName(aliasText, "image alias create");
      await withClient(globalsOf(cmd), async (c) => {
        const fp = await resolveFingerprint(c, target);
        await c.post("/1.0/images/aliases", { name, target: fp, description: opts.description });
      });
    });

  alias
    .command("delete")
    .alias("rm")
    .description("Delete an alias (the image stays)")
    .argument("<alias>", "[local:]alias name")
    .action(async (aliasText: string, _opts, cmd: Command) => {
      const name = await aliasName(aliasText, "image alias delete");
      await withClient(globalsOf(cmd), (c) => c.delete(aliasPath(name)));
    });

  alias
    .command("rename")
    .alias("mv")
    .description("Rename an alias")
    .argument("<alias>", "[local:]current name")
    .argument("<new-name>", "New name")
    .action(async (aliasText: string, newName: string, _opts, cmd: Command) => {
      const name = await aliasName(aliasText, "image alias rename");
      await withClient(globalsOf(cmd), (c) => c.post(aliasPath(name), { name: newName }));
    });

  alias
    .command("list")
    .alias("ls")
    .description("List aliases; filters are words that must appear in the alias name")
    .argument("[filters...]", "[local:] then words to match")
    .action(async (filters: string[], _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const words = [...filters];
      if (words[0]?.includes(":")) {
        const cfg = await loadRemoteConfig();
        const ref = parseImageRef(words[0], cfg);
        localRemote(ref, cfg, "image alias list");
        if (ref.name) words[0] = ref.name;
        else words.shift();
      }
      const list = await withClient(g, (c) => c.get<ImageAliasEntry[]>("/1.0/images/aliases?recursion=1"));
      const shown = (list ?? []).filter((a) => words.every((w) => a.name.includes(w))).sort((a, b) => a.name.localeCompare(b.name));
      await printList(COLUMNS, shown, g.format);
    });
}
