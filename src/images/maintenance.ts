import type { ImageStore } from "./store.js";
import { ZERO_TIME } from "./types.js";

/** The server config keys the tasks read (ServerConfig.value satisfies it). */
export interface MaintenanceConfig {
  value(key: "images.remote_cache_expiry" | "images.auto_update_interval"): Promise<string | undefined>;
}

interface Log {
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>): void;
  debug(msg: string, ctx?: Record<string, unknown>): void;
}

export interface ImageMaintenanceOptions {
  images: ImageStore;
  config: MaintenanceConfig;
  /** Refreshes one image from its origin (ImageRefresher.refresh). */
  refresh: (project: string, fingerprint: string) => Promise<{ refreshed: boolean }>;
  log: Log;
  /** Projects to look at; only "default" until projects exist. */
  projects?: () => Promise<string[]>;
  /** Whether an instance uses the image (such images are never pruned); none do until instances exist. */
  inUse?: (project: string, fingerprint: string) => Promise<boolean>;
  now?: () => number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** How often expiry runs (LXD: daily) and how soon after start-up the first runs happen. */
const PRUNE_EVERY_MS = DAY_MS;
const FIRST_RUN_MS = 5_000;
/** setTimeout holds at most 2^31-1 ms (24.8 days); longer intervals run at that pace. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The daemon's image housekeeping: removes cached remote images nobody used for
 * images.remote_cache_expiry days, and refreshes auto_update images from their origin every
 * images.auto_update_interval hours (re-read before each round, 0 disables). Timers are
 * unref'd; stop() cancels them and waits for a round in progress.
 */
export class ImageMaintenance {
  private timers = new Set<NodeJS.Timeout>();
  private busy: Promise<unknown> = Promise.resolve();
  private stopped = true;
  private readonly now: () => number;

  constructor(private readonly o: ImageMaintenanceOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.after(FIRST_RUN_MS, () => this.pruneLoop());
    void this.scheduleUpdate();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.busy.catch(() => {});
  }

  /** Deletes expired cached images; returns their fingerprints. */
  async pruneExpired(): Promise<string[]> {
    const days = Number((await this.o.config.value("images.remote_cache_expiry")) ?? "10");
    if (!(days > 0)) return [];
    const cutoff = this.now() - days * DAY_MS;
    const removed: string[] = [];
    for (const project of await this.projects()) {
      for (const img of await this.o.images.list(project)) {
        if (!img.cached) continue;
        const last = img.last_used_at && img.last_used_at !== ZERO_TIME ? img.last_used_at : img.uploaded_at;
        if (Date.parse(last) >= cutoff) continue;
        if (await this.o.inUse?.(project, img.fingerprint)) continue;
        try {
          await this.o.images.delete(project, img.fingerprint);
          removed.push(img.fingerprint);
          this.o.log.info("Deleted expired cached image", { project, fingerprint: img.fingerprint, last_used: last });
        } catch (e) {
          this.o.log.warn("Failed deleting expired image", { project, fingerprint: img.fingerprint, err: (e as Error).message });
        }
      }
    }
    return removed;
  }

  /** Refreshes every auto_update image that has an origin; returns the fingerprints that changed. */
  async autoUpdate(): Promise<string[]> {
    const changed: string[] = [];
    for (const project of await this.projects()) {
      for (const img of await this.o.images.list(project)) {
        if (!img.auto_update || !img.update_source?.alias) continue;
        try {
          if ((await this.o.refresh(project, img.fingerprint)).refreshed) changed.push(img.fingerprint);
        } catch (e) {
          this.o.log.warn("Failed to update the image", { project, fingerprint: img.fingerprint, err: (e as Error).message });
        }
      }
    }
    return changed;
  }

  private projects(): Promise<string[]> {
    return this.o.projects?.() ?? Promise.resolve(["default"]);
  }

  private async pruneLoop(): Promise<void> {
    await this.guard("expiry", () => this.pruneExpired());
    this.after(PRUNE_EVERY_MS, () => this.pruneLoop());
  }

  /** The next auto-update round comes one interval from now (the interval is read each time). */
  private async scheduleUpdate(): Promise<void> {
    const hours = Number((await this.o.config.value("images.auto_update_interval").catch(() => undefined)) ?? "6");
    // A disabled interval is looked at again hourly, so enabling it needs no restart.
    this.after(hours > 0 ? Math.min(hours * HOUR_MS, MAX_TIMER_MS) : HOUR_MS, async () => {
      if (hours > 0) await this.guard("auto-update", () => this.autoUpdate());
      await this.scheduleUpdate();
    });
  }

  /** Runs one round at a time, never throwing into a timer. */
  private guard(what: string, fn: () => Promise<unknown>): Promise<void> {
    const run = this.busy.catch(() => {}).then(async () => {
      if (this.stopped) return;
      try {
        await fn();
      } catch (e) {
        this.o.log.warn(`Image ${what} failed`, { err: (e as Error).message });
      }
    });
    this.busy = run;
    return run;
  }

  private after(ms: number, fn: () => Promise<void>): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      void fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }
}
