/** Progress of a byte transfer (upload, download), reported to a callback. */
export interface TransferProgress {
  /** Which part is moving: "metadata", "rootfs", or "image" for a unified tarball. */
  part: string;
  bytes: number;
  /** Total expected bytes when known. */
  total?: number;
  /** 0–100 when the total is known. */
  percent?: number;
  /** Bytes per second since the transfer started. */
  speed: number;
}

export type ProgressCallback = (p: TransferProgress) => void;

/** How often a running transfer reports at most (the first and last reports are always sent). */
const REPORT_INTERVAL_MS = 250;

/** Counts bytes and calls back at a bounded rate. */
export class ProgressTracker {
  private bytes = 0;
  private lastReport = 0;
  private readonly started = Date.now();

  constructor(
    private readonly part: string,
    private readonly cb: ProgressCallback | undefined,
    private readonly total?: number,
  ) {}

  add(n: number): void {
    this.bytes += n;
    const now = Date.now();
    if (this.lastReport === 0 || now - this.lastReport >= REPORT_INTERVAL_MS) this.report(now);
  }

  /** Sends the final figure. */
  finish(): void {
    this.report(Date.now());
  }

  get count(): number {
    return this.bytes;
  }

  private report(now: number): void {
    this.lastReport = now;
    if (!this.cb) return;
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const p: TransferProgress = { part: this.part, bytes: this.bytes, speed: Math.round(this.bytes / secs) };
    if (this.total && this.total > 0) {
      p.total = this.total;
      p.percent = Math.min(100, Math.floor((this.bytes * 100) / this.total));
    }
    this.cb(p);
  }
}

/**
 * LXD's progress text, which `lxc` prints as is: "45% (1.20MB/s)" when the total is known,
 * else "12.34MB (1.20MB/s)".
 */
export function progressText(p: TransferProgress): string {
  const speed = `${byteSize(p.speed)}/s`;
  return p.percent !== undefined ? `${p.percent}% (${speed})` : `${byteSize(p.bytes)} (${speed})`;
}

/** Decimal byte sizes with two decimals, as LXD's units.GetByteSizeString(n, 2). */
export function byteSize(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ["kB", "MB", "GB", "TB", "PB", "EB"];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(2)}${units[i]}`;
}
