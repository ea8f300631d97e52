/**
 * Carrying out an init plan against the server: reading the current state of the entities a
 * preseed names, and applying the steps in order. When a step fails, what this run made is
 * undone in reverse order (created entities deleted, updated ones and config keys put back),
 * and the error names the entity that failed.
 */
import type { Profile } from "../api/profile.js";
import type { Server } from "../api/server.js";
import type { LodgeClient, RequestOptions } from "../client/client.js";
import { Revert } from "../core/revert.js";
import type { Current, Etagged, Step } from "./init-plan.js";
import type { Preseed } from "./init-preseed.js";
import { fetchWithEtag, ifMatch } from "./network-ref.js";
import type { Network } from "./network-types.js";
import type { StoragePool } from "./storage-types.js";

/** The part of the client the plan needs (a fake in unit tests). */
export type InitApi = {
  post(path: string, body: unknown, opts?: RequestOptions): Promise<unknown>;
  put(path: string, body: unknown, opts?: RequestOptions): Promise<unknown>;
  patch(path: string, body: unknown, opts?: RequestOptions): Promise<unknown>;
  delete(path: string): Promise<unknown>;
};

export interface Names {
  networks: string[];
  pools: string[];
  profiles: string[];
}

export const namesOf = (p: Preseed): Names => ({
  networks: (p.networks ?? []).map((n) => n.name),
  pools: (p.storage_pools ?? []).map((s) => s.name),
  profiles: (p.profiles ?? []).map((s) => s.name),
});

/** A 404 is "absent"; any other error stays an error. */
async function optional<T>(c: LodgeClient, url: string): Promise<Etagged<T> | undefined> {
  try {
    return await fetchWithEtag<T>(c, url);
  } catch (e) {
    if ((e as { status?: number }).status === 404) return undefined;
    throw e;
  }
}

/** Whether the server has the storage pool API (before it, GET /1.0/storage-pools is a 404). */
export async function hasStoragePools(c: LodgeClient): Promise<boolean> {
  const r = await c.raw("GET", "/1.0/storage-pools");
  return r.status !== 404;
}

/** The server config and the named entities, each with its ETag. */
export async function readCurrent(c: LodgeClient, names: Names): Promise<Current> {
  const server = await fetchWithEtag<Server>(c, "/1.0");
  const into = async <T>(list: string[], url: (n: string) => string) => {
    const m = new Map<string, Etagged<T>>();
    for (const n of new Set(list)) {
      const got = await optional<T>(c, url(n));
      if (got) m.set(n, got);
    }
    return m;
  };
  const enc = encodeURIComponent;
  return {
    config: { ...server.value.config },
    configEtag: server.etag,
    pools: (await hasStoragePools(c)) ? await into<StoragePool>(names.pools, (n) => `/1.0/storage-pools/${enc(n)}`) : undefined,
    networks: await into<Network>(names.networks, (n) => `/1.0/networks/${enc(n)}`),
    profiles: await into<Profile>(names.profiles, (n) => `/1.0/profiles/${enc(n)}`),
  };
}

/** A step failed; what the run did before it was undone (or `undoErrors` says what was not). */
export class InitStepError extends Error {
  override name = "InitStepError";
  constructor(
    readonly step: Step,
    cause: Error,
    readonly undoErrors: Error[],
    undone: number,
  ) {
    const verb = step.kind === "create" ? "create" : "update";
    let msg = `Failed to ${verb} ${step.what}: ${cause.message}`;
    if (undoErrors.length) msg += `\nUndoing this run's earlier changes failed too: ${undoErrors.map((e) => e.message).join("; ")}`;
    else if (undone) msg += `\nThis run's earlier changes were undone.`;
    super(msg);
  }
}

/** Applies the steps in order; on a failure undoes the done ones, newest first, and throws. */
export async function applyPlan(api: InitApi, steps: readonly Step[]): Promise<void> {
  const undo = new Revert();
  let done = 0;
  for (const step of steps) {
    try {
      await applyStep(api, step, undo);
      done++;
    } catch (e) {
      const undoErrors = await undo.run();
      throw new InitStepError(step, e instanceof Error ? e : new Error(String(e)), undoErrors, done);
    }
  }
  undo.commit();
}

async function applyStep(api: InitApi, step: Step, undo: Revert): Promise<void> {
  switch (step.kind) {
    case "config":
      await api.patch("/1.0", { config: step.set }, ifMatch(step.etag));
      undo.add(() => api.patch("/1.0", { config: step.previous }));
      return;
    case "create":
      await api.post(step.collection, step.body);
      undo.add(() => api.delete(step.url));
      return;
    case "update":
      await api.put(step.url, step.body, ifMatch(step.etag));
      undo.add(() => api.put(step.url, step.previous));
      return;
  }
}
