import { ApiError, badRequest, conflict, forbidden, preconditionFailed } from "../api/errors.js";
import { etagOf } from "../api/etag.js";
import type { Profile, ProfilePut, ProfilesPost } from "../api/profile.js";
import type { EventHub } from "../core/events.js";
import { instanceKey, instanceUrl, type InstanceRecord } from "../instances/record.js";
import type { InstanceService } from "../instances/service.js";
import { checkProfileDevicesOnHost, validateProfileBody } from "./config.js";
import type { ManagedNetworks } from "../instances/nic-parents.js";
import type { ManagedVolumes } from "../instances/devices/volumes.js";
import { DEFAULT_PROFILE, profileKey, profileUrl, validateProfileName, type ProfileRecord } from "./record.js";
import type { ProfileStore } from "./store.js";
import { changeProfileForUsers, usersOf, withInstanceLocks, type ProfileUsersDeps } from "./users.js";

export interface ProfileServiceDeps extends ProfileUsersDeps {
  profiles: ProfileStore;
  events: EventHub;
  /** Managed networks, for NICs that name one. */
  networks?: ManagedNetworks;
  /** Custom storage volumes, for disks that attach one. */
  volumes?: ManagedVolumes;
}

/**
 * Profiles: create, read, change, rename, delete. A change reaches every instance that uses the
 * profile (checked against each, applied live to the running ones, all or nothing: users.ts);
 * the default profile always exists.
 */
export class ProfileService {
  constructor(private readonly d: ProfileServiceDeps) {}

  private get instances(): InstanceService {
    return this.d.instances;
  }

  etag(p: ProfileRecord): string {
    return etagOf({ config: p.config, description: p.description, devices: p.devices });
  }

  /** The API view; `users` are the project's instances (read once for a list). */
  view(p: ProfileRecord, users: readonly InstanceRecord[]): Profile {
    return {
      name: p.name,
      description: p.description,
      config: p.config,
      devices: p.devices,
      used_by: users.filter((r) => r.profiles.includes(p.name)).map((r) => instanceUrl(r.project, r.name)).sort(),
    };
  }

  async get(project: string, name: string): Promise<{ profile: Profile; etag: string }> {
    const p = await this.d.profiles.get(project, name);
    return { profile: this.view(p, await this.instances.records(project)), etag: this.etag(p) };
  }

  async list(project: string): Promise<Profile[]> {
    const [profiles, users] = await Promise.all([this.d.profiles.list(project), this.instances.records(project)]);
    return profiles.map((p) => this.view(p, users));
  }

  async names(project: string): Promise<string[]> {
    return (await this.d.profiles.list(project)).map((p) => p.name);
  }

  async create(project: string, req: ProfilesPost): Promise<ProfileRecord> {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw badRequest("The request body must be a profile object");
    const name = validateProfileName(req.name);
    const body = validateProfileBody(req);
    await checkProfileDevicesOnHost(body.devices, {}, { networks: this.d.networks, volumes: this.d.volumes, project });
    const record: ProfileRecord = { name, project, ...body };
    try {
      await this.d.store.put(profileKey(project, name), record, { revision: 0 });
    } catch {
      throw conflict(`Profile "${name}" already exists`);
    }
    this.d.events.lifecycle("profile-created", profileUrl(project, name), {}, project);
    return record;
  }

  /** PUT replaces description, config and devices; PATCH merges them (a "" config value unsets). */
  async update(project: string, name: string, put: ProfilePut, mode: "put" | "patch", ifMatch?: string): Promise<void> {
    if (!put || typeof put !== "object" || Array.isArray(put)) throw badRequest("The request body must be a profile object");
    await this.d.profiles.withLocks(project, [name], async () => {
      const before = await this.d.profiles.get(project, name);
      if (ifMatch && ifMatch !== this.etag(before)) throw preconditionFailed(`Profile "${name}" changed since it was read (ETag mismatch)`);
      const merged: ProfilePut =
        mode === "put"
          ? put
          : {
              description: put.description ?? before.description,
              config: { ...before.config, ...(put.config ?? {}) },
              devices: { ...before.devices, ...(put.devices ?? {}) },
            };
      const body = validateProfileBody(merged);
      if (mode === "patch") for (const [k, v] of Object.entries(body.config)) if (v === "") delete body.config[k];
      await checkProfileDevicesOnHost(body.devices, before.devices, { networks: this.d.networks, volumes: this.d.volumes, project });
      const after: ProfileRecord = { ...before, ...body };
      await changeProfileForUsers(this.d, before, after);
    });
    this.d.events.lifecycle("profile-updated", profileUrl(project, name), {}, project);
  }

  /** Renames a profile; the instances using it follow (their lists name the new one). */
  async rename(project: string, name: string, newName: unknown): Promise<string> {
    if (name === DEFAULT_PROFILE) throw forbidden(`The "${DEFAULT_PROFILE}" profile cannot be renamed`);
    const target = validateProfileName(newName);
    await this.d.profiles.withLocks(project, [name, target], async () => {
      const p = await this.d.profiles.get(project, name);
      if (await this.exists(project, target)) throw conflict(`Profile "${target}" already exists`);
      const users = await usersOf(this.instances, project, name);
      await withInstanceLocks(this.instances, project, users.map((u) => u.name), () =>
        this.d.store.txn(async (tx) => {
          tx.delete(profileKey(project, name));
          tx.put(profileKey(project, target), { ...p, name: target });
          for (const u of users) {
            const cur = await tx.get<InstanceRecord>(instanceKey(project, u.name));
            if (cur) tx.put(cur.key, { ...cur.value, profiles: cur.value.profiles.map((x) => (x === name ? target : x)) });
          }
        }),
      );
    });
    this.d.events.lifecycle("profile-renamed", profileUrl(project, target), { old_name: name }, project);
    return target;
  }

  /** Deletes an unused profile; one in use is refused naming its users. */
  async delete(project: string, name: string): Promise<void> {
    if (name === DEFAULT_PROFILE) throw forbidden(`The "${DEFAULT_PROFILE}" profile cannot be deleted`);
    await this.d.profiles.withLocks(project, [name], async () => {
      await this.d.profiles.get(project, name);
      const users = await usersOf(this.instances, project, name);
      if (users.length)
        throw badRequest(`Profile "${name}" is currently in use by ${users.map((u) => `instance "${u.name}"`).join(", ")}; remove it from them first`);
      await this.d.store.delete(profileKey(project, name));
    });
    this.d.events.lifecycle("profile-deleted", profileUrl(project, name), {}, project);
  }

  private async exists(project: string, name: string): Promise<boolean> {
    try {
      await this.d.profiles.get(project, name);
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      throw e;
    }
  }
}
