/**
 * How every `lodge` verb prints what it got: lists as table, csv, json or yaml; single objects
 * as yaml or json. Lists in json/yaml are the API objects themselves (as `lxc list -f json`
 * does), so scripts get every field, not just the columns a person reads.
 */
import type { Format } from "./format.js";
import { loadYaml } from "./yaml.js";

export { FORMATS, type Format } from "./format.js";

export interface Column<T> {
  header: string;
  value: (item: T) => string;
}

// The print/render functions are async only because the yaml package is loaded when yaml is
// actually asked for: evaluating it costs ~25 ms of start-up that `lodge info` should not pay.

/** Prints `items` as rows of `columns` (table, csv) or as the objects themselves (json, yaml). */
export async function printList<T>(columns: Column<T>[], items: T[], format: Format): Promise<void> {
  process.stdout.write(await renderList(columns, items, format));
}

/** Prints one object: json for --format json, yaml for anything else (as `lxc ... show`). */
export async function printObject(obj: unknown, format: Format): Promise<void> {
  process.stdout.write(await renderObject(obj, format));
}

export async function renderList<T>(columns: Column<T>[], items: T[], format: Format): Promise<string> {
  switch (format) {
    case "json":
      return renderJson(items);
    case "yaml":
      return renderYaml(items);
    case "csv":
      return renderCsv(items.map((it) => columns.map((c) => c.value(it))));
    case "table":
      return renderTable(
        columns.map((c) => c.header),
        items.map((it) => columns.map((c) => c.value(it))),
      );
  }
}

export async function renderObject(obj: unknown, format: Format): Promise<string> {
  return format === "json" ? renderJson(obj) : renderYaml(obj);
}

export function renderJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

export async function renderYaml(value: unknown): Promise<string> {
  return (await yamlRenderer())(value);
}

/** A synchronous yaml renderer, for callers that print many values in order (monitor). */
export async function yamlRenderer(): Promise<(value: unknown) => string> {
  const { stringify } = await loadYaml();
  // Long values (certificates, descriptions) stay on one line, as LXD's own YAML does.
  return (value) => stringify(value, { lineWidth: 0, indentSeq: false });
}

/**
 * A box-drawn table like lxc's: a rule above and below the header and under every row, so
 * multi-line cells (several addresses, say) stay readable.
 */
export function renderTable(headers: string[], rows: string[][]): string {
  const cellLines = (cell: string) => cell.split("\n");
  const widths = headers.map((h, i) =>
    Math.max(displayWidth(h), ...rows.map((r) => Math.max(...cellLines(r[i] ?? "").map(displayWidth)))),
  );
  const rule = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+\n";
  const line = (cells: string[]) =>
    "|" + cells.map((c, i) => " " + c + " ".repeat(widths[i]! - displayWidth(c)) + " ").join("|") + "|\n";
  const block = (row: string[]) => {
    const split = headers.map((_, i) => cellLines(row[i] ?? ""));
    const height = Math.max(...split.map((l) => l.length));
    let out = "";
    for (let n = 0; n < height; n++) out += line(split.map((l) => l[n] ?? ""));
    return out;
  };
  let out = rule + block(headers) + rule;
  for (const r of rows) out += block(r) + rule;
  return out;
}

/**
 * CSV without a header row (as `lxc list -f csv`, so scripts can read it directly). Fields are
 * quoted per RFC 4180 when they hold a comma, a quote or a line break (or start/end with a
 * space, which some readers would trim); quotes inside are doubled. Records end with "\n".
 */
export function renderCsv(rows: string[][]): string {
  return rows.map((r) => r.map(csvField).join(",") + "\n").join("");
}

export function csvField(value: string): string {
  if (!/[",\r\n]|^\s|\s$/.test(value)) return value;
  return '"' + value.replace(/"/g, '""') + '"';
}

/** Columns a terminal gives a string: code points, with East Asian wide characters as two. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x300 && cp < 0x370) || cp === 0x200d || (cp >= 0xfe00 && cp <= 0xfe0f)) continue;
    w += isWide(cp) ? 2 : 1;
  }
  return w;
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

/** "Yes"/"No" cells, as lxc prints booleans in tables. */
export const yesNo = (b: boolean) => (b ? "YES" : "NO");

/** An API timestamp as lxc shows it in tables: "2024/01/31 14:05 UTC". */
export function shortTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}/${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())} UTC`;
}

/**
 * A "Key: value" summary for people (the table format of info-style verbs), values aligned;
 * a multi-line value continues under its first line. In csv it is key,value records.
 */
export function renderDetails(pairs: [string, string][], format: "table" | "csv"): string {
  if (format === "csv") return renderCsv(pairs);
  const width = Math.max(0, ...pairs.map(([k]) => displayWidth(k))) + 2;
  return pairs
    .map(([k, v]) => {
      const [first = "", ...rest] = v.split("\n");
      const head = (k + ":").padEnd(width) + first;
      return [head.trimEnd(), ...rest.map((l) => " ".repeat(width) + l)].join("\n") + "\n";
    })
    .join("");
}
