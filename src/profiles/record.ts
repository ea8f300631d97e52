import { badRequest } from "../api/errors.js";

/** What the store keeps for a profile at profiles/<project>/<name>. */
export interface ProfileRecord {
  name: string;
  project: string;
  description: string;
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
}

/** The part of a profile that layers onto an instance (instances/expand.ts). */
export type ProfileLayer = Pick<ProfileRecord, "name" | "config" | "devices">;

/** The profile every project has; it cannot be deleted or renamed. */
export const DEFAULT_PROFILE = "default";

export const profileKey = (project: string, name: string) => `profiles/${project}/${name}`;
export const profilePrefix = (project: string) => `profiles/${project}/`;

export function profileUrl(project: string, name: string): string {
  return `/1.0/profiles/${encodeURIComponent(name)}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;
}

/** A profile name as LXD accepts them: not empty, no slash, not "." or "..". */
export function validateProfileName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw badRequest("No profile name provided");
  if (name.includes("/")) throw badRequest(`Invalid profile name "${name}": profile names may not contain slashes`);
  if (name === "." || name === "..") throw badRequest(`Invalid profile name "${name}"`);
  if (/[\s\x00-\x1f\x7f]/.test(name)) throw badRequest(`Invalid profile name "${name}": no spaces or control characters`);
  if (name.length > 64) throw badRequest(`Invalid profile name "${name}": at most 64 characters`);
  return name;
}
