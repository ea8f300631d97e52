import { notFound } from "../api/errors.js";
import { KeyedLock } from "../instances/locks.js";
import type { DocumentStore } from "../state/store.js";
import { DEFAULT_PROFILE, profileKey, profilePrefix, type ProfileLayer, type ProfileRecord } from "./record.js";

/** How long a profile change waits for another one on the same profile. */
const PROFILE_LOCK_TIMEOUT_MS = 60_000;

/**
 * Stored profiles, read by the instance side (expansion) and written by ProfileService. Its
 * locks order every change that ties instances to profiles: profile locks are always taken
 * before instance locks, each set in name order, so no two changes can wait on each other.
 */
export class ProfileStore {
  readonly locks = new KeyedLock();

  constructor(private readonly store: DocumentStore) {}

  /** At daemon start: the default profile exists, holding the root disk on `pool`. */
  async ensureDefault(project: string, pool: string): Promise<boolean> {
    if (await this.store.get(profileKey(project, DEFAULT_PROFILE))) return false;
    const record: ProfileRecord = {
      name: DEFAULT_PROFILE,
      project,
      description: "Default Lodge profile",
      config: {},
      devices: { root: { type: "disk", path: "/", pool } },
    };
    try {
      await this.store.put(profileKey(project, DEFAULT_PROFILE), record, { revision: 0 });
    } catch {
      return false; // made meanwhile
    }
    return true;
  }

  async get(project: string, name: string): Promise<ProfileRecord> {
    const doc = await this.store.get<ProfileRecord>(profileKey(project, name));
    if (!doc) throw notFound(`Profile "${name}" not found`);
    return doc.value;
  }

  async list(project: string): Promise<ProfileRecord[]> {
    return (await this.store.list<ProfileRecord>(profilePrefix(project))).map((d) => d.value);
  }

  /** The layers of `names`, in order (one store read); a 404 names the first missing one. */
  async resolve(project: string, names: readonly string[]): Promise<ProfileLayer[]> {
    if (names.length === 0) return [];
    const byName = new Map((await this.list(project)).map((p) => [p.name, p]));
    return layersOf(byName, names);
  }

  /** Runs `fn` holding the locks of the named profiles (in name order). */
  withLocks<T>(project: string, names: readonly string[], fn: () => Promise<T>): Promise<T> {
    const keys = [...new Set(names)].sort();
    const step = (i: number): Promise<T> =>
      i === keys.length ? fn() : this.locks.with(`${project}/${keys[i]}`, `Profile "${keys[i]}"`, PROFILE_LOCK_TIMEOUT_MS, () => step(i + 1));
    return step(0);
  }
}

/** The layers of `names` from a map of a project's profiles. */
export function layersOf(byName: ReadonlyMap<string, ProfileLayer>, names: readonly string[]): ProfileLayer[] {
  return names.map((n) => {
    const p = byName.get(n);
    if (!p) throw notFound(`Profile "${n}" not found`);
    return { name: p.name, config: p.config, devices: p.devices };
  });
}
