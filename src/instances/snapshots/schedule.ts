import type { Logger } from "../../core/logger.js";
import type { InstanceStatus } from "../driver.js";
import type { InstanceRecord } from "../record.js";
import type { InstanceService } from "../service.js";
import { due, parseSchedule } from "./cron.js";
import type { SnapshotService } from "./service.js";

export interface SchedulerDeps {
  instances: Pick<InstanceService, "records" | "expanded">;
  snapshots: Pick<SnapshotService, "create" | "pruneExpired">;
  status: (r: InstanceRecord) => Promise<{ status: InstanceStatus }>;
  log: Logger;
}

const MINUTE = 60_000;

/**
 * Scheduled snapshots and expiry, as LXD runs them: once a minute, each instance whose
 * `snapshots.schedule` matches that minute gets a snapshot (named by snapshots.pattern, expiring
 * by snapshots.expiry), stopped ones only with `snapshots.schedule.stopped`; then snapshots
 * whose expires_at has passed are deleted. The timer fires just after each minute starts;
 * stop() ends it and waits for a round under way (before the store closes).
 */
export class SnapshotScheduler {
  private timer?: NodeJS.Timeout;
  private round?: Promise<void>;
  private stopped = false;
  /** The minute each instance was last snapshotted for, so a minute never fires twice. */
  private readonly fired = new Map<string, number>();

  constructor(private readonly d: SchedulerDeps) {}

  start(): void {
    const next = () => {
      if (this.stopped) return;
      const wait = MINUTE - (Date.now() % MINUTE) + 500;
      this.timer = setTimeout(() => {
        const round = this.runDue(new Date()).then(
          () => undefined,
          (e: Error) => this.d.log.error("snapshot schedule round failed", { err: e.message }),
        );
        this.round = round;
        void round.finally(next);
      }, wait);
      this.timer.unref();
    };
    next();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  /** One round at `now`: due snapshots, then expired ones pruned. Returns the snapshots taken. */
  async runDue(now: Date): Promise<string[]> {
    const minute = Math.floor(now.getTime() / MINUTE);
    const taken: string[] = [];
    for (const r of await this.d.instances.records()) {
      const { config } = await this.d.instances.expanded(r);
      const expr = config["snapshots.schedule"];
      if (!expr) continue;
      const key = `${r.project}/${r.name}`;
      try {
        if (!due(parseSchedule(expr), now) || this.fired.get(key) === minute) continue;
        if (!/^(true|1|yes|on)$/i.test(config["snapshots.schedule.stopped"] ?? "") && (await this.d.status(r)).status === "Stopped") continue;
        this.fired.set(key, minute);
        const s = await this.d.snapshots.create(r.project, r.name, {});
        taken.push(`${r.name}/${s.name}`);
        this.d.log.info("took a scheduled snapshot", { project: r.project, instance: r.name, snapshot: s.name });
      } catch (e) {
        this.d.log.error("scheduled snapshot failed", { project: r.project, instance: r.name, err: (e as Error).message });
      }
    }
    const pruned = await this.d.snapshots.pruneExpired(now);
    if (pruned.length) this.d.log.info("deleted expired snapshots", { snapshots: pruned.join(", ") });
    return taken;
  }
}
