// Small statistics and formatting helpers for the benchmarks.
import { readFileSync } from "node:fs";
import { cpus } from "node:os";

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

/** The load averages now and the CPU count. */
export function loadavg() {
  const [l1, l5, l15] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return { l1, l5, l15, cpus: cpus().length };
}

/**
 * Samples the 1-minute load every 5 s from now; stop() returns { loadStart, loadEnd, loadDuring,
 * loadHigh } for a result's meta (high: above 0.75 per CPU at the start).
 */
export function loadSampler() {
  const loadStart = loadavg();
  const seen = [loadStart.l1];
  const timer = setInterval(() => seen.push(loadavg().l1), 5000);
  timer.unref();
  return {
    loadStart,
    high: loadStart.l1 > loadStart.cpus * 0.75,
    stop() {
      clearInterval(timer);
      const loadEnd = loadavg();
      seen.push(loadEnd.l1);
      return { loadStart, loadEnd, loadDuring: { mean: seen.reduce((a, b) => a + b, 0) / seen.length, max: Math.max(...seen) }, loadHigh: this.high };
    },
  };
}

/** The servers line of a result's meta. */
export function fmtServers(m) {
  return `Lodge: ${m.lodge}${m.lxd ? `   LXD: ${m.lxd}` : `   LXD: missing (${m.lxdMissing})`}`;
}

/** The load line of a result's meta. */
export function fmtLoad(m) {
  return `load average at start ${m.loadStart.l1} ${m.loadStart.l5} ${m.loadStart.l15}, at end ${m.loadEnd.l1} ${m.loadEnd.l5} ${m.loadEnd.l15} (${m.loadStart.cpus} CPUs)${m.loadDuring ? `; 1-min load during: mean ${m.loadDuring.mean.toFixed(1)}, max ${m.loadDuring.max}` : ""}${m.loadHigh ? "  — HIGH at start: numbers are noisy, run again" : ""}`;
}

/**
 * Lodge vs LXD per metric: for each of metrics ({ id, label, target? }) that has samples
 * (samples[id][serverKey] = ms[]), the summaries, the ratio of medians and whether the target is met.
 */
export function compare(metrics, samples) {
  const out = [];
  for (const m of metrics) {
    const s = samples[m.id];
    if (!s) continue;
    const lodge = s.lodge ? summary(s.lodge) : null;
    const lxd = s.lxd ? summary(s.lxd) : null;
    const ratio = lodge && lxd ? lodge.median / lxd.median : null;
    out.push({ ...m, lodge: lodge && { ...lodge, samples: s.lodge }, lxd: lxd && { ...lxd, samples: s.lxd }, ratio, met: m.target && ratio != null ? ratio <= m.target : null });
  }
  return out;
}

/** A table row of a compared metric: label, medians, p90s, ratio, and target when withTarget. */
export function compareRow(x, withTarget = true) {
  const row = [x.label, fmtMs(x.lodge?.median), fmtMs(x.lodge?.p90), fmtMs(x.lxd?.median), fmtMs(x.lxd?.p90), x.ratio == null ? "–" : `${x.ratio.toFixed(2)}×`];
  return withTarget ? [...row, x.target ? `≤ ${x.target}×` : "", x.met == null ? "" : x.met ? "yes" : "NO"] : row;
}

export const COMPARE_HEADER = ["metric", "Lodge median", "p90", "LXD median", "p90", "Lodge/LXD", "target", "met"];

/** The "errors (N):" lines of a result, or nothing. */
export function errorLines(errors) {
  return errors.length ? ["", `errors (${errors.length}):`, ...errors.map((e) => `  ${e}`)] : [];
}
