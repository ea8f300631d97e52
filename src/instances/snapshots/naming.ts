/**
 * Names and lifetimes of new snapshots, as LXD derives them from an instance's config:
 * `snapshots.pattern` ("snap%d" by default, with `{{ creation_date|date:'…' }}` in Go's
 * layout) and `snapshots.expiry` ("1M 2H 3d 4w 5m 6y": minutes, hours, days, weeks, months,
 * years).
 */

export const DEFAULT_PATTERN = "snap%d";

/**
 * The next snapshot name from `pattern`, given the names taken: %d becomes one more than the
 * highest index in use (0 at first); a pattern without %d that is taken gets "-<n>" appended.
 */
export function nextSnapshotName(pattern: string | undefined, taken: readonly string[], now = new Date()): string {
  let p = renderPattern(pattern || DEFAULT_PATTERN, now);
  const count = p.split("%d").length - 1;
  if (count > 1) throw new Error(`snapshots.pattern "${pattern}" has more than one %d`);
  if (count === 0) {
    if (!taken.includes(p)) return p;
    p = `${p}-%d`;
  }
  const [before, after] = p.split("%d") as [string, string];
  const re = new RegExp(`^${escape(before)}(\\d+)${escape(after)}$`);
  let next = 0;
  for (const n of taken) {
    const m = re.exec(n);
    if (m) next = Math.max(next, Number(m[1]) + 1);
  }
  return `${before}${next}${after}`;
}

/** Renders `{{ creation_date }}` and `{{ creation_date|date:"<Go layout>" }}` (pongo2's forms). */
export function renderPattern(pattern: string, now: Date): string {
  return pattern.replace(/\{\{\s*creation_date\s*(?:\|\s*date\s*:\s*(["'])(.*?)\1\s*)?\}\}/g, (_m, _q, layout?: string) =>
    layout === undefined ? now.toISOString() : goDate(now, layout),
  );
}

/** Formats `d` (UTC) with a Go time layout; the common tokens, longest first. */
export function goDate(d: Date, layout: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const h12 = d.getUTCHours() % 12 || 12;
  const tokens: [string, () => string][] = [
    ["2006", () => String(d.getUTCFullYear())],
    ["Jan", () => months[d.getUTCMonth()]!],
    ["Mon", () => days[d.getUTCDay()]!],
    ["MST", () => "UTC"],
    ["01", () => pad(d.getUTCMonth() + 1)],
    ["02", () => pad(d.getUTCDate())],
    ["15", () => pad(d.getUTCHours())],
    ["03", () => pad(h12)],
    ["04", () => pad(d.getUTCMinutes())],
    ["05", () => pad(d.getUTCSeconds())],
    ["06", () => pad(d.getUTCFullYear() % 100)],
    ["PM", () => (d.getUTCHours() < 12 ? "AM" : "PM")],
  ];
  let out = "";
  for (let i = 0; i < layout.length; ) {
    const t = tokens.find(([k]) => layout.startsWith(k, i));
    if (t) {
      out += t[1]();
      i += t[0].length;
    } else out += layout[i++];
  }
  return out;
}

/** The expiry time for `snapshots.expiry` from `now`, or undefined when the key is empty. */
export function expiryFrom(expr: string | undefined, now = new Date()): Date | undefined {
  if (!expr || !expr.trim()) return undefined;
  const t = new Date(now);
  for (const part of expr.trim().split(/\s+/)) {
    const m = /^(\d+)([MHdwmy])$/.exec(part);
    if (!m) throw new Error(`invalid expiry "${part}": use <n><unit> with M (minutes), H, d, w, m (months) or y`);
    const n = Number(m[1]);
    switch (m[2]) {
      case "M": t.setUTCMinutes(t.getUTCMinutes() + n); break;
      case "H": t.setUTCHours(t.getUTCHours() + n); break;
      case "d": t.setUTCDate(t.getUTCDate() + n); break;
      case "w": t.setUTCDate(t.getUTCDate() + 7 * n); break;
      case "m": t.setUTCMonth(t.getUTCMonth() + n); break;
      case "y": t.setUTCFullYear(t.getUTCFullYear() + n); break;
    }
  }
  return t;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
