import type { Command } from "commander";
import type { Operation } from "../api/operation.js";
import { globalsOf, withClient } from "./globals.js";
import { printList, printObject, shortTime, yesNo, type Column } from "./output.js";

const COLUMNS: Column<Operation>[] = [
  { header: "ID", value: (o) => o.id },
  { header: "TYPE", value: (o) => o.class },
  { header: "DESCRIPTION", value: (o) => o.description },
  { header: "STATUS", value: (o) => o.status.toUpperCase() },
  { header: "CANCELABLE", value: (o) => yesNo(o.may_cancel) },
  { header: "CREATED", value: (o) => shortTime(o.created_at) },
];

export function register(program: Command): void {
  const op = program.command("operation").description("List, show and cancel background operations");

  op.command("list")
    .alias("ls")
    .description("List operations (running, and finished ones for a minute)")
    .option("--all-projects", "Show operations of every project")
    .action(async (opts: { allProjects?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const path = "/1.0/operations?recursion=1" + (opts.allProjects ? "&all-projects=true" : "");
      const byStatus = await withClient(g, (c) => c.get<Record<string, Operation[]> | null>(path));
      const ops = Object.values(byStatus ?? {})
        .flat()
        .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
      await printList(COLUMNS, ops, g.format);
    });

  op.command("show")
    .description("Show one operation")
    .argument("<id>", "Operation ID")
    .action(async (id: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      await printObject(await withClient(g, (c) => c.get<Operation>(`/1.0/operations/${encodeURIComponent(id)}`)), g.format);
    });

  op.command("delete")
    .alias("rm")
    .description("Cancel a running operation")
    .argument("<id>", "Operation ID")
    .action(async (id: string, _opts, cmd: Command) => {
      await withClient(globalsOf(cmd), (c) => c.delete(`/1.0/operations/${encodeURIComponent(id)}`));
    });
}
