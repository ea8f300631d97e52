import type { Command } from "commander";
import type { Warning } from "../api/warning.js";
import { globalsOf, withClient } from "./globals.js";
import { printList, printObject, shortTime, type Column } from "./output.js";

const COLUMNS: Column<Warning>[] = [
  { header: "UUID", value: (w) => w.uuid },
  { header: "TYPE", value: (w) => w.type },
  { header: "STATUS", value: (w) => w.status.toUpperCase() },
  { header: "SEVERITY", value: (w) => w.severity.toUpperCase() },
  { header: "COUNT", value: (w) => String(w.count) },
  { header: "PROJECT", value: (w) => w.project },
  { header: "LAST SEEN", value: (w) => shortTime(w.last_seen_at) },
];

const path = (uuid: string) => `/1.0/warnings/${encodeURIComponent(uuid)}`;

export function register(program: Command): void {
  const warning = program.command("warning").description("List, acknowledge and delete warnings");

  warning
    .command("list")
    .alias("ls")
    .description("List warnings (resolved ones only with --all)")
    .option("-a, --all", "Include resolved warnings")
    .option("--all-projects", "Show warnings of every project")
    .action(async (opts: { all?: boolean; allProjects?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const url = "/1.0/warnings?recursion=1" + (opts.allProjects ? "&all-projects=true" : "");
      const all = await withClient(g, (c) => c.get<Warning[] | null>(url));
      const shown = (all ?? [])
        .filter((w) => opts.all || w.status !== "resolved")
        .sort((a, b) => a.last_seen_at.localeCompare(b.last_seen_at));
      await printList(COLUMNS, shown, g.format);
    });

  warning
    .command("show")
    .description("Show one warning")
    .argument("<uuid>", "Warning UUID")
    .action(async (uuid: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      await printObject(await withClient(g, (c) => c.get<Warning>(path(uuid))), g.format);
    });

  warning
    .command("ack")
    .description("Acknowledge a warning (it stays hidden until it happens again)")
    .argument("<uuid>", "Warning UUID")
    .action(async (uuid: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => c.patch(path(uuid), { status: "acknowledged" }));
    });

  warning
    .command("delete")
    .alias("rm")
    .description("Delete a warning")
    .argument("<uuid>", "Warning UUID")
    .action(async (uuid: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => c.delete(path(uuid)));
    });
}
