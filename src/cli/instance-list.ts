/**
 * `lodge list [FILTER…]`: one request (`GET /1.0/instances?recursion=2`), filtered and
 * printed here, so hundreds of instances cost one round trip. Table and csv print the columns;
 * json and yaml print the full instance objects, as `lxc list -f json` does.
 */
import { Option, type Command } from "commander";
import type { InstanceFull } from "../api/instance.js";
import { globalsOf, withClient } from "./globals.js";
import { DEFAULT_INSTANCE_COLUMNS, COLUMN_HELP, matchListFilters, parseColumns, parseListFilters } from "./instance-columns.js";
import { FORMATS, type Format } from "./format.js";
import { printList } from "./output.js";
import type { VerbModule } from "./program.js";

interface ListOpts {
  format?: Format;
  columns?: string;
  allProjects?: boolean;
  fast?: boolean;
}

function registerList(program: Command): void {
  program
    .command("list")
    .description("List instances; filters are names (regexp or prefix) or key=value on config, status=, type=")
    .argument("[filters...]", "Filters, e.g. c1, 'web-.*', user.role=db, status=running")
    .option("-c, --columns <columns>", COLUMN_HELP)
    // lxc's -f; the global --format means the same.
    .addOption(new Option("-f, --format <format>", "Output format").choices(FORMATS))
    .option("--all-projects", "List the instances of every project")
    .option("--fast", "Same as -c nsacPt (no state needed)")
    .action(async (words: string[], opts: ListOpts, c: Command) => {
      const g = globalsOf(c);
      const spec = opts.columns ?? (opts.fast ? "nsacPt" : opts.allProjects ? "e" + DEFAULT_INSTANCE_COLUMNS : DEFAULT_INSTANCE_COLUMNS);
      // Both are parsed before the request, so a typo costs no round trip.
      const columns = parseColumns(spec);
      const filters = parseListFilters(words.filter((w) => w !== "local:"));
      const path = "/1.0/instances?recursion=2" + (opts.allProjects ? "&all-projects=true" : "");
      const all = await withClient(g, (client) => client.get<InstanceFull[]>(path));
      // Plain code-unit order, as lxc sorts: localeCompare would load ICU's collator (~10 ms).
      const shown = all.filter((i) => matchListFilters(i, filters)).sort((a, b) => byString(a.project, b.project) || byString(a.name, b.name));
      await printList(columns, shown, opts.format ?? g.format);
    });
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function verb(name: string): VerbModule {
  if (name !== "list") throw new Error(`instance-list: no verb "${name}"`);
  return { register: registerList };
}
