// Small statistics and formatting helpers for the benchmarks.

/** Quantile q (0..1) of numbers, linear interpolation between closest ranks (R type 7). */
export function quantile(values, q) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export const median = (v) => quantile(v, 0.5);
export const p90 = (v) => quantile(v, 0.9);

/** { n, median, p90, min, max } of samples (null fields when empty). */
export function summary(samples) {
  return {
    n: samples.length,
    median: median(samples),
    p90: p90(samples),
    min: samples.length ? Math.min(...samples) : null,
    max: samples.length ? Math.max(...samples) : null,
  };
}

/** "12.3 ms" / "2.61 s" for milliseconds. */
export function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(1)} ms`;
}

/** "1.23 MiB" / "456 KiB" for kibibytes. */
export function fmtKiB(kib) {
  if (kib == null || Number.isNaN(kib)) return "–";
  if (Math.abs(kib) >= 1024) return `${(kib / 1024).toFixed(2)} MiB`;
  return `${kib.toFixed(0)} KiB`;
}

/** Renders rows (arrays of strings) as an aligned text table; the first row is the header. */
export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? "").length)));
  const line = (r) => r.map((c, i) => String(c ?? "").padEnd(widths[i])).join("  ").trimEnd();
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}
