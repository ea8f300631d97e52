import { badRequest, isApiError } from "../api/errors.js";
import type { Logger } from "../core/logger.js";
import { Revert } from "../core/revert.js";
import { expandDevices } from "../instances/expand.js";
import { checkExpansion } from "../instances/expansion.js";
import { instanceKey, type InstanceRecord } from "../instances/record.js";
import { LOCK_TIMEOUT_MS, type InstanceService, type LiveApply } from "../instances/service.js";
import type { DocumentStore, Txn } from "../state/store.js";
import { profileKey, type ProfileLayer, type ProfileRecord } from "./record.js";

export interface ProfileUsersDeps {
  store: DocumentStore;
  instances: InstanceService;
  /** Applies a change to a running instance (lifecycle.applyLive); returns its undo. */
  live: LiveApply;
  /** Whether an instance runs (or is frozen). */
  running: (r: InstanceRecord) => Promise<boolean>;
  log: Logger;
}

/** The instances of a project that use a profile, by name. */
export async function usersOf(instances: InstanceService, project: string, name: string): Promise<InstanceRecord[]> {
  return (await instances.records(project)).filter((r) => r.profiles.includes(name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Runs `fn` holding the locks of the named instances, taken in name order. */
export function withInstanceLocks<T>(instances: InstanceService, project: string, names: readonly string[], fn: () => Promise<T>): Promise<T> {
  const sorted = [...new Set(names)].sort();
  const step = (i: number): Promise<T> =>
    i === sorted.length ? fn() : instances.locks.with(`${project}/${sorted[i]}`, `Instance "${sorted[i]}"`, LOCK_TIMEOUT_MS, () => step(i + 1));
  return step(0);
}

/**
 * Stores a changed profile after checking it against every instance that uses it and applying
 * it to the running ones, all or nothing: an instance that cannot take it (a bad expansion, a
 * device that cannot be plugged in) refuses the whole change with a 400 naming the instance,
 * and what was already applied to the others is undone; nothing is stored. The caller holds
 * the profile's lock; the users' locks are taken here, in name order. Instance records change
 * only where the expansion needs new volatile keys (a NIC from the profile), in the same
 * transaction as the profile.
 */
export async function changeProfileForUsers(d: ProfileUsersDeps, before: ProfileRecord, after: ProfileRecord): Promise<void> {
  const { project, name } = before;
  const users = await usersOf(d.instances, project, name);
  await withInstanceLocks(d.instances, project, users.map((u) => u.name), async () => {
    // Read again under the locks: what they hold now is what the change is checked against.
    const current = (await usersOf(d.instances, project, name)).filter((r) => users.some((u) => u.name === r.name));
    const plans: { before: InstanceRecord; after: InstanceRecord; layers: { before: ProfileLayer[]; after: ProfileLayer[] }; running: boolean }[] = [];
    for (const r of current) {
      const beforeLayers = await d.instances.layers(r);
      const afterLayers = beforeLayers.map((l) => (l.name === name ? { name, config: after.config, devices: after.devices } : l));
      const running = await d.running(r);
      const next = refusing(r.name, () => checkExpansion({ before: r, beforeLayers, after: r, afterLayers, running }));
      await refusingAsync(r.name, () => d.instances.roots.check(expandDevices(next, afterLayers), next.type));
      plans.push({ before: r, after: next, layers: { before: beforeLayers, after: afterLayers }, running });
    }
    const undo = new Revert();
    try {
      for (const p of plans) {
        // A root disk size from the profile holds every user's volume, running or not.
        const undoSize = await refusingAsync(p.before.name, () => d.instances.roots.change(p.before, expandDevices(p.before, p.layers.before), expandDevices(p.after, p.layers.after)));
        if (undoSize) undo.add(undoSize);
        if (!p.running) continue;
        const undoOne = await refusingAsync(p.before.name, () => d.live(p.before, p.after, p.layers));
        if (undoOne) undo.add(undoOne);
      }
      await d.store.txn(async (tx: Txn) => {
        tx.put(profileKey(project, name), after);
        for (const p of plans) {
          if (sameConfig(p.before.config, p.after.config)) continue;
          const cur = await tx.get<InstanceRecord>(instanceKey(project, p.before.name));
          if (cur) tx.put(cur.key, { ...cur.value, config: p.after.config });
        }
      });
      undo.commit();
    } finally {
      const errors = await undo.run();
      for (const e of errors) d.log.error("could not undo a live profile change", { profile: name, project, err: e.message });
    }
  });
}

function refusing<T>(instance: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw wrap(instance, e);
  }
}

async function refusingAsync<T>(instance: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw wrap(instance, e);
  }
}

function wrap(instance: string, e: unknown): Error {
  const msg = e instanceof Error ? e.message : String(e);
  if (!isApiError(e) || e.status >= 500) return e instanceof Error ? e : new Error(msg);
  return badRequest(`The profile change cannot be applied to instance "${instance}": ${msg}`);
}

function sameConfig(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
