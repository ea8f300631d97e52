/**
 * RFC 3339 timestamps with nanosecond digits, as LXD stamps its events, strictly increasing
 * within this process. Clients such as `lxc monitor` hand each event to its own goroutine, so
 * the printed order is not the sent order: the timestamp is what orders them.
 */
const originMs = Date.now();
const originNs = process.hrtime.bigint();
let last = 0n;

export function nanoTimestamp(): string {
  let ns = BigInt(originMs) * 1_000_000n + (process.hrtime.bigint() - originNs);
  if (ns <= last) ns = last + 1n;
  last = ns;
  const ms = Number(ns / 1_000_000n);
  const iso = new Date(ms).toISOString(); // yyyy-mm-ddThh:mm:ss.mmmZ
  const frac = (ns % 1_000_000_000n).toString().padStart(9, "0");
  return `${iso.slice(0, 19)}.${frac}Z`;
}
