/**
 * What every instance verb does with the API: the instance's URL, reading it with its ETag,
 * waiting for the operation a request starts, changing state, and running one action over
 * several names the way lxc does (each failure reported, the rest still done, exit 1).
 */
import { ApiError } from "../api/errors.js";
import type { Instance, InstancePut, StateAction } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { SilentFailure } from "./exit.js";

export const instanceUrl = (name: string, sub = "") => `/1.0/instances/${encodeURIComponent(name)}${sub}`;

/** The instance and its ETag (for If-Match on the PUT that follows). */
export async function fetchInstance(c: LodgeClient, name: string): Promise<{ instance: Instance; etag?: string }> {
  const r = await c.raw<Instance>("GET", instanceUrl(name));
  if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
  const etag = r.headers.etag;
  return { instance: r.body.metadata, etag: typeof etag === "string" ? etag : undefined };
}

/**
 * Sends a request answered by an operation and waits for it on the server (`/wait`): one plain
 * request, cheaper than opening the events socket for work that reports no progress.
 */
export async function runOperation(c: LodgeClient, send: () => Promise<Operation>): Promise<Operation> {
  const op = await send();
  return c.wait(op);
}

/** The writable part of an instance, as PUT takes it. */
export function writable(i: Instance): InstancePut {
  return {
    architecture: i.architecture,
    config: { ...i.config },
    devices: structuredClone(i.devices ?? {}),
    ephemeral: i.ephemeral,
    profiles: [...(i.profiles ?? [])],
    stateful: i.stateful,
    description: i.description ?? "",
  };
}

/** Reads, changes and writes back an instance's writable fields, refusing a concurrent change. */
export async function updateInstance(c: LodgeClient, name: string, change: (put: InstancePut, current: Instance) => void): Promise<void> {
  const { instance, etag } = await fetchInstance(c, name);
  const put = writable(instance);
  change(put, instance);
  await runOperation(c, () => c.put<Operation>(instanceUrl(name), put, { headers: etag ? { "If-Match": etag } : {} }));
}

export interface StateOptions {
  force?: boolean;
  timeout?: number;
}

export async function changeState(c: LodgeClient, name: string, action: StateAction, opts: StateOptions = {}): Promise<void> {
  const body: Record<string, unknown> = { action, force: !!opts.force, stateful: false };
  body.timeout = opts.timeout ?? -1;
  await runOperation(c, () => c.put<Operation>(instanceUrl(name, "/state"), body));
}

/**
 * Runs `fn` for each name in turn. As lxc, a failure is printed with the instance's name and
 * the others still go ahead; the command then exits 1.
 */
export async function forEachName(names: readonly string[], fn: (name: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const name of names) {
    try {
      await fn(name);
    } catch (e) {
      if (names.length === 1) throw e;
      failed = true;
      if (e instanceof Error && e.name === "ConnectionError") throw e;
      process.stderr.write(`Error: ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
  if (failed) throw new SilentFailure();
}

/** Names of every instance in the project (for --all). */
export async function allInstanceNames(c: LodgeClient): Promise<string[]> {
  const urls = await c.get<string[]>("/1.0/instances");
  return urls.map((u) => decodeURIComponent(u.split("?")[0]!.split("/").pop()!));
}
