/**
 * What the storage verbs do with the API: the URLs of pools, volumes and their snapshots; the
 * volume words lxc takes (`VOLUME`, `custom/VOLUME`, `VOLUME/SNAPSHOT`, and `POOL/VOLUME` for
 * copy and move); reading with the ETag and writing back with If-Match; and requests a server
 * may answer at once or with an operation (LXD 5.0 answers pool and volume CRUD at once, and
 * snapshots, copies and moves with operations), waited for either way.
 */
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient, RequestOptions } from "../client/client.js";
import { parseEditedMap } from "./editor.js";
import { UsageError } from "./exit.js";
import { withClient, type GlobalOptions } from "./globals.js";
import { fetchWithEtag, ifMatch } from "./network-ref.js";
import { waitWithProgress } from "./progress.js";
import { VOLUME_TYPES, type StoragePool, type StoragePoolPut, type StorageVolume, type StorageVolumePut } from "./storage-types.js";

const enc = encodeURIComponent;

export const poolUrl = (pool: string, sub = "") => `/1.0/storage-pools/${enc(pool)}${sub}`;
export const volumesUrl = (pool: string, type?: string) => poolUrl(pool, type === undefined ? "/volumes" : `/volumes/${enc(type)}`);

/** A volume as the verbs name it: its pool, type and name, and a snapshot of it when given. */
export interface VolumeRef {
  pool: string;
  type: string;
  name: string;
  snapshot?: string;
}

export function volumeUrl(v: VolumeRef, sub = ""): string {
  const base = `${volumesUrl(v.pool, v.type)}/${enc(v.name)}`;
  return v.snapshot === undefined ? base + sub : `${base}/snapshots/${enc(v.snapshot)}${sub}`;
}

/** How a volume is written back to the user: `custom/` is left out, as lxc does. */
export const volumeLabel = (v: Omit<VolumeRef, "pool">) => `${v.type === "custom" ? "" : v.type + "/"}${v.name}${v.snapshot === undefined ? "" : "/" + v.snapshot}`;

function checkPart(part: string, what: string, text: string): string {
  if (part === "") throw new UsageError(`Invalid ${what} in "${text}": it is empty`);
  return part;
}

/**
 * The volume word after POOL, as lxc reads it: `VOLUME` and `VOLUME/SNAPSHOT` are custom
 * volumes; a first part naming a type (`container/c1`, `custom/data/snap0`) gives the type.
 * `snapshots: false` refuses a snapshot (verbs that work on volumes only).
 */
export function parseVolumeArg(pool: string, text: string, opts: { snapshots?: boolean } = {}): VolumeRef {
  if (pool === "") throw new UsageError("Missing pool name");
  let parts = text.split("/");
  let type = "custom";
  if (parts.length > 1 && (VOLUME_TYPES as readonly string[]).includes(parts[0]!)) {
    type = parts[0]!;
    parts = parts.slice(1);
  }
  if (parts.length > 2) throw new UsageError(`Invalid snapshot name in "${text}": expected VOLUME/SNAPSHOT`);
  const ref: VolumeRef = { pool, type, name: checkPart(parts[0]!, "volume name", text) };
  if (parts.length === 2) {
    if (opts.snapshots === false) throw new UsageError(`"${text}" names a snapshot: this verb takes a volume`);
    ref.snapshot = checkPart(parts[1]!, "snapshot name", text);
  }
  return ref;
}

/** `POOL/VOLUME[/SNAPSHOT]` of copy and move (custom volumes only, as in lxc). */
export function parsePoolVolume(text: string, role: "source" | "target"): VolumeRef {
  const slash = text.indexOf("/");
  if (slash < 0) throw new UsageError(`No storage pool for ${role} volume specified: expected POOL/VOLUME, got "${text}"`);
  const pool = checkPart(text.slice(0, slash), "pool name", text);
  const ref = parseVolumeArg(pool, text.slice(slash + 1));
  if (ref.type !== "custom") throw new UsageError(`Only custom volumes can be copied or moved: "${text}" is a ${ref.type} volume`);
  if (role === "target" && ref.snapshot !== undefined) throw new UsageError(`Invalid target "${text}": the target is POOL/VOLUME, not a snapshot`);
  return ref;
}

export async function fetchPool(c: LodgeClient, name: string): Promise<{ pool: StoragePool; etag?: string }> {
  const { value, etag } = await fetchWithEtag<StoragePool>(c, poolUrl(name));
  return { pool: value, etag };
}

export const poolPut = (p: StoragePool): Required<StoragePoolPut> => ({ description: p.description ?? "", config: { ...p.config } });

/** Reads, changes and writes back a pool's editable fields, refusing a concurrent change. */
export async function updatePool(c: LodgeClient, name: string, change: (put: Required<StoragePoolPut>, current: StoragePool) => void): Promise<void> {
  const { pool, etag } = await fetchPool(c, name);
  const put = poolPut(pool);
  change(put, pool);
  await send(c, "PUT", poolUrl(name), put, ifMatch(etag));
}

export async function fetchVolume(c: LodgeClient, v: VolumeRef): Promise<{ volume: StorageVolume; etag?: string }> {
  const { value, etag } = await fetchWithEtag<StorageVolume>(c, volumeUrl(v));
  return { volume: value, etag };
}

export const volumePut = (v: StorageVolume): Required<Omit<StorageVolumePut, "restore">> => ({ description: v.description ?? "", config: { ...v.config } });

/** Reads, changes and writes back a volume's editable fields, refusing a concurrent change. */
export async function updateVolume(c: LodgeClient, v: VolumeRef, change: (put: Required<Omit<StorageVolumePut, "restore">>, current: StorageVolume) => void): Promise<void> {
  const { volume, etag } = await fetchVolume(c, v);
  const put = volumePut(volume);
  change(put, volume);
  await send(c, "PUT", volumeUrl(v), put, ifMatch(etag));
}

/** One request, done when the server says so: at once, or when the operation it started ends. */
export async function send(c: LodgeClient, method: string, url: string, body?: unknown, opts?: RequestOptions): Promise<void> {
  const r = await c.raw<unknown>(method, url, body, opts);
  if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
  if (r.body.type === "async") await c.wait(r.body.metadata as Operation);
}

/** As send, with the operation's progress on a terminal (copies and moves can be long). */
export async function sendWithProgress(c: LodgeClient, method: string, url: string, body: unknown, label: string): Promise<void> {
  await waitWithProgress(
    c,
    async () => {
      const r = await c.raw<unknown>(method, url, body);
      if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
      return r.body.type === "async" ? (r.body.metadata as Operation) : null;
    },
    { label },
  );
}

const strings = (m: unknown, what: string): Record<string, string> => {
  if (m === null || m === undefined) return {};
  if (typeof m !== "object" || Array.isArray(m)) throw new UsageError(`Invalid ${what}: expected a map of keys`);
  return Object.fromEntries(Object.entries(m as Record<string, unknown>).map(([k, v]) => [k, v === null ? "" : String(v)]));
};

const description = (v: unknown) => (v === null ? "" : String(v));

/**
 * The description and config of edited YAML. A field left out stays as it is: a pool's source
 * and size are fixed, so YAML that only changes the description must not drop them (an empty
 * `config: {}` does clear the keys that may be cleared).
 */
function editedPut(doc: Record<string, unknown>, what: string): StoragePoolPut {
  const out: StoragePoolPut = {};
  if (doc.description !== undefined) out.description = description(doc.description);
  if (doc.config !== undefined) out.config = strings(doc.config, `${what} config`);
  return out;
}

/** The fields `storage edit` takes; what `storage show` prints besides them is ignored. */
export const POOL_WRITABLE = ["description", "config"] as const;
const POOL_READONLY = ["name", "driver", "status", "used_by", "locations"];

/** Edited YAML as a pool PUT body; read-only fields are ignored, unknown ones refused by name. */
export async function parsePoolPut(text: string): Promise<StoragePoolPut> {
  const doc = await parseEditedMap(text, "storage pool", [...POOL_WRITABLE, ...POOL_READONLY]);
  return editedPut(doc, "storage pool");
}

export const VOLUME_WRITABLE = ["description", "config"] as const;
const VOLUME_READONLY = ["name", "type", "content_type", "created_at", "location", "project", "used_by", "restore"];

/** Edited YAML as a volume PUT body. */
export async function parseVolumePut(text: string): Promise<StorageVolumePut> {
  const doc = await parseEditedMap(text, "storage volume", [...VOLUME_WRITABLE, ...VOLUME_READONLY]);
  return editedPut(doc, "storage volume");
}

/** Edited YAML as a volume snapshot PUT body: only its description and expiry change. */
export async function parseSnapshotPut(text: string): Promise<{ description?: string; expires_at?: string }> {
  const doc = await parseEditedMap(text, "storage volume snapshot", ["description", "expires_at", "name", "config", "content_type", "created_at"]);
  const out: { description?: string; expires_at?: string } = {};
  if (doc.description !== undefined) out.description = description(doc.description);
  if (doc.expires_at !== undefined && doc.expires_at !== null) out.expires_at = doc.expires_at instanceof Date ? doc.expires_at.toISOString() : String(doc.expires_at);
  return out;
}

/**
 * `withClient` for the storage verbs: a "not found" from a server that has no storage API at
 * all (Lodge before storage pools) is said as lxc says it, rather than as a missing pool.
 */
export async function withStorage<T>(g: GlobalOptions, fn: (c: LodgeClient) => Promise<T>): Promise<T> {
  return withClient(g, async (c) => {
    try {
      return await fn(c);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        const server = await c.get<{ api_extensions?: string[] }>("/1.0").catch(() => undefined);
        if (server && !(server.api_extensions ?? []).includes("storage")) throw new ApiError(404, 'The server is missing the required "storage" API extension');
      }
      throw e;
    }
  });
}
