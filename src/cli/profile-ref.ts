/**
 * What the profile verbs do with the API: the profile's URL, reading it with its ETag, and
 * writing it back with If-Match (a concurrent change is refused rather than overwritten).
 */
import { ApiError } from "../api/errors.js";
import type { Profile, ProfilePut } from "../api/profile.js";
import type { LodgeClient } from "../client/client.js";
import { parseEditedMap } from "./editor.js";
import { UsageError } from "./exit.js";

export const profileUrl = (name: string) => `/1.0/profiles/${encodeURIComponent(name)}`;

/** The fields `profile edit` and `profile show` work with. */
export const PROFILE_WRITABLE = ["description", "config", "devices"] as const;

export async function fetchProfile(c: LodgeClient, name: string): Promise<{ profile: Profile; etag?: string }> {
  const r = await c.raw<Profile>("GET", profileUrl(name));
  if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
  const etag = r.headers.etag;
  return { profile: r.body.metadata, etag: typeof etag === "string" ? etag : undefined };
}

export function profilePut(p: Profile): Required<ProfilePut> {
  return { description: p.description ?? "", config: { ...p.config }, devices: structuredClone(p.devices ?? {}) };
}

/** Reads, changes and writes back a profile's editable fields. */
export async function updateProfile(c: LodgeClient, name: string, change: (put: Required<ProfilePut>, current: Profile) => void): Promise<void> {
  const { profile, etag } = await fetchProfile(c, name);
  const put = profilePut(profile);
  change(put, profile);
  await c.put(profileUrl(name), put, { headers: etag ? { "If-Match": etag } : {} });
}

/** Edited YAML as a profile PUT body; read-only fields are refused by name, values become strings. */
export async function parseProfilePut(text: string): Promise<ProfilePut> {
  // What `profile show` prints may come back as it is: name and used_by are read-only, and ignored.
  const put = await parseEditedMap(text, "profile", [...PROFILE_WRITABLE, "name", "used_by"]);
  const strings = (m: unknown) => Object.fromEntries(Object.entries((m ?? {}) as Record<string, unknown>).map(([k, v]) => [k, v === null ? "" : String(v)]));
  const out: ProfilePut = {};
  if (put.description !== undefined) out.description = put.description === null ? "" : String(put.description);
  out.config = strings(put.config);
  out.devices = Object.fromEntries(Object.entries((put.devices ?? {}) as Record<string, unknown>).map(([k, v]) => [k, strings(v)]));
  return out;
}

/** `PROFILE[,PROFILE…]` as names. */
export function profileNames(text: string): string[] {
  const names = text.split(",").map((s) => s.trim());
  if (names.some((n) => n === "")) throw new UsageError(`Invalid profile list "${text}": profile names separated by commas`);
  return names;
}
