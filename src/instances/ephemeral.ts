import type { EventHub } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import type { InstanceDriver } from "./driver.js";
import { hostName, instanceUrl, type InstanceRecord } from "./record.js";
import { LOCK_TIMEOUT_MS, type InstanceService } from "./service.js";

export interface EphemeralDeps {
  instances: InstanceService;
  driver: Pick<InstanceDriver, "status" | "watchStop">;
  events: EventHub;
  log: Logger;
  /** Records that a (kept) instance stopped by itself (lifecycle's power state). */
  stopped: (r: InstanceRecord) => Promise<void>;
}

/**
 * Ephemeral instances are deleted when they stop, as LXD does, whichever way they stop. An API
 * stop deletes at once (lifecycle.change); this covers the rest: every running instance is
 * watched through the driver's stop signal (no polling), and when one is found stopped and
 * ephemeral it is deleted through the same path as a normal delete (InstanceService.remove:
 * driver, logs, volume, record, resumable at the next start). A stop that happened while lodged
 * was down is found by boot(). A restart holds the instance's lock from its stop to its start,
 * so the check, which takes that lock, sees the instance running again and leaves it.
 *
 * A plain instance that stopped by itself (a poweroff inside) is recorded as stopped, as LXD
 * does, so that the next daemon start does not start it again; one that went down with the
 * host (lodged gone too) still counts as running, and comes back with it.
 */
export class EphemeralReaper {
  private readonly watches = new Map<string, () => void>();
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly d: EphemeralDeps) {}

  /**
   * At daemon start, before the API answers: deletes ephemeral instances that stopped while
   * lodged was away, and watches the running ones (all of them: `ephemeral` may be set later).
   */
  async boot(): Promise<string[]> {
    const deleted: string[] = [];
    for (const r of await this.d.instances.records()) {
      this.watch(r, { check: false });
      if ((await this.d.driver.status(hostName(r.project, r.name))).status !== "Stopped") continue;
      this.unwatch(r.project, r.name);
      if (!r.ephemeral) continue;
      // One that cannot be deleted now does not keep the daemon from starting; the next start retries.
      const gone = await this.reap(r.project, r.name).catch((e: Error) => {
        this.d.log.error("could not delete a stopped ephemeral instance", { project: r.project, instance: r.name, err: e.message });
        return false;
      });
      if (gone) deleted.push(`${r.project}/${r.name}`);
    }
    return deleted;
  }

  /**
   * Watches a (just started) instance. The watch is set before the status is read, so a stop
   * between the two is not missed. Idempotent: a restart keeps the watch it had.
   */
  watch(r: Pick<InstanceRecord, "project" | "name">, opts: { check?: boolean } = {}): void {
    const key = `${r.project}/${r.name}`;
    if (this.closed || this.watches.has(key)) return;
    this.watches.set(key, this.d.driver.watchStop(hostName(r.project, r.name), () => {
      if (!this.closed) this.track(this.reap(r.project, r.name));
    }));
    if (opts.check !== false) this.track(this.reap(r.project, r.name));
  }

  /** Ends every watch and waits for checks under way (before the store closes, or at host shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    for (const end of this.watches.values()) end();
    this.watches.clear();
    await Promise.allSettled([...this.pending]);
  }

  private unwatch(project: string, name: string): void {
    const key = `${project}/${name}`;
    this.watches.get(key)?.();
    this.watches.delete(key);
  }

  private track(p: Promise<unknown>): void {
    const done = p.then(
      () => undefined,
      (e: Error) => this.d.log.error("ephemeral instance check failed", { err: e.message }),
    );
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
  }

  /** Under the instance's lock: if it is stopped, the watch ends, and if ephemeral it is deleted. */
  private async reap(project: string, name: string): Promise<boolean> {
    return this.d.instances.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const r = await this.d.instances.record(project, name).catch(() => undefined);
      if (!r) {
        this.unwatch(project, name);
        return false;
      }
      if ((await this.d.driver.status(hostName(project, name))).status !== "Stopped") return false;
      this.unwatch(project, name);
      if (!r.ephemeral) {
        await this.d.stopped(r);
        return false;
      }
      this.d.log.info("deleting ephemeral instance that stopped", { project, instance: name });
      await this.d.instances.remove(r);
      this.d.events.lifecycle("instance-deleted", instanceUrl(project, name), {}, project);
      return true;
    });
  }
}
