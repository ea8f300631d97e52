/**
 * The writable fields of an instance request as they are stored: image properties as image.*
 * keys, volatile.* keys kept apart from what a user may write, the profile list checked.
 */
import { badRequest } from "../../api/errors.js";

/** Image properties become image.* keys of the instance, as LXD does. */
export function imageConfig(image?: { properties: Record<string, string> }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(image?.properties ?? {})) out[`image.${k}`] = v;
  return out;
}

export function stripVolatile(c: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(c).filter(([k]) => !k.startsWith("volatile.")));
}

export function onlyVolatile(c: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("volatile.")));
}

/** An instance's profile list: names, each once. */
export function profileList(v: unknown): string[] {
  if (v === undefined || v === null) return ["default"];
  if (!Array.isArray(v) || v.some((p) => typeof p !== "string")) throw badRequest("profiles must be a list of profile names");
  const seen = new Set<string>();
  for (const p of v as string[]) {
    if (seen.has(p)) throw badRequest(`Profile "${p}" is listed twice`);
    seen.add(p);
  }
  return v as string[];
}
