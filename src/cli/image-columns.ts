/**
 * The columns of `lodge image list`, named by lxc's letters (`-c lfpdatsu` is the default),
 * and lxc's client-side filters (`os=busybox`, or a word matched in aliases and fingerprint).
 */
import type { Image } from "../images/types.js";
import { UsageError } from "./exit.js";
import type { Column } from "./output.js";

export const DEFAULT_IMAGE_COLUMNS = "lfpdatsu";

const COLUMNS: Record<string, Column<Image>> = {
  l: { header: "ALIAS", value: (i) => shortestAlias(i) },
  L: { header: "ALIASES", value: (i) => aliasNames(i).join("\n") },
  f: { header: "FINGERPRINT", value: (i) => i.fingerprint.slice(0, 12) },
  F: { header: "FINGERPRINT", value: (i) => i.fingerprint },
  p: { header: "PUBLIC", value: (i) => (i.public ? "yes" : "no") },
  d: { header: "DESCRIPTION", value: (i) => i.properties?.description ?? "" },
  a: { header: "ARCHITECTURE", value: (i) => i.architecture },
  t: { header: "TYPE", value: (i) => (i.type || "container").toUpperCase() },
  s: { header: "SIZE", value: (i) => imageSize(i.size) },
  u: { header: "UPLOAD DATE", value: (i) => uploadDate(i.uploaded_at) },
};

/** The columns `-c` asks for, in its order; an unknown letter is a usage error naming it. */
export function imageColumns(spec: string = DEFAULT_IMAGE_COLUMNS): Column<Image>[] {
  const letters = spec.replace(/,/g, "");
  if (!letters) throw new UsageError(`Invalid columns "${spec}": give at least one of ${Object.keys(COLUMNS).join("")}`);
  return [...letters].map((ch) => {
    const c = COLUMNS[ch];
    if (!c) throw new UsageError(`Invalid column "${ch}" in "${spec}": use any of ${Object.keys(COLUMNS).join("")}`);
    return c;
  });
}

const aliasNames = (i: Image) => (i.aliases ?? []).map((a) => a.name).sort();

/** The shortest alias, then " (N more)" as lxc shows it. */
function shortestAlias(i: Image): string {
  const names = aliasNames(i);
  if (names.length === 0) return "";
  const shortest = names.reduce((a, b) => (b.length < a.length ? b : a));
  return names.length > 1 ? `${shortest} (${names.length - 1} more)` : shortest;
}

/** Sizes as lxc 5.0 prints them: mebibytes with two decimals, labelled "MB". */
export function imageSize(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)}MB`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "Jan 2, 2006 at 3:04pm (UTC)", lxc's upload date; "" for a missing time. */
export function uploadDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return "";
  const h = d.getUTCHours();
  const mm = String(d.getUTCMinutes()).padStart(2, "0");
  return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ${d.getUTCFullYear()} at ${h % 12 || 12}:${mm}${h < 12 ? "am" : "pm"} (UTC)`;
}

/**
 * lxc's filters, all of which must match: `key=value` compares a property (the value is an
 * anchored regular expression when it compiles, else plain text); `type=`/`architecture=` and
 * other top-level fields work too. A bare word must appear in an alias or the fingerprint.
 */
export function matchesFilters(img: Image, filters: string[]): boolean {
  return filters.every((f) => matchesFilter(img, f));
}

function matchesFilter(img: Image, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq === -1) return img.fingerprint.includes(filter.toLowerCase()) || (img.aliases ?? []).some((a) => a.name.includes(filter));
  const key = filter.slice(0, eq);
  const value = filter.slice(eq + 1);
  const field = key.startsWith("properties.") ? undefined : (img as unknown as Record<string, unknown>)[key];
  const prop = img.properties?.[key.replace(/^properties\./, "")];
  const candidates = [prop, typeof field === "string" || typeof field === "boolean" ? String(field) : undefined];
  let re: RegExp | undefined;
  try {
    re = new RegExp(/[\^$]/.test(value) ? value : `^(?:${value})$`);
  } catch {
    re = undefined;
  }
  return candidates.some((c) => c !== undefined && (re ? re.test(c) : c === value));
}

/** Rows in a stable order: by first alias, then fingerprint (unaliased images last). */
export function sortImages(images: Image[]): Image[] {
  const key = (i: Image) => aliasNames(i)[0] ?? "\uffff";
  return [...images].sort((a, b) => key(a).localeCompare(key(b)) || a.fingerprint.localeCompare(b.fingerprint));
}
