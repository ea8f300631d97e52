import type { ImageType } from "./format.js";

/**
 * Wire shapes of the images API (reference: definitions Image, ImagePut, ImageAliasesEntry),
 * and the record Lodge stores per project. They sit with the image domain until src/api grows
 * an image module; nothing here imports daemon code.
 */

export interface ImageAlias {
  name: string;
  description: string;
}

export interface ImageSourceInfo {
  alias: string;
  certificate: string;
  protocol: string;
  server: string;
  image_type: string;
}

/** The user-editable part of an image (PUT/PATCH). */
export interface ImagePut {
  auto_update: boolean;
  properties: Record<string, string>;
  public: boolean;
  expires_at: string;
  profiles: string[];
}

export interface Image extends ImagePut {
  aliases: ImageAlias[];
  architecture: string;
  cached: boolean;
  filename: string;
  fingerprint: string;
  size: number;
  update_source?: ImageSourceInfo;
  type: ImageType;
  created_at: string;
  last_used_at: string;
  uploaded_at: string;
}

export interface ImageAliasEntry {
  name: string;
  description: string;
  target: string;
  type: ImageType;
}

/** What the store keeps at images/<project>/<fingerprint>: the image without its aliases, plus file facts. */
export interface ImageRecord extends Omit<Image, "aliases"> {
  /** File extensions, for export file names ("meta-<fp>.tar.xz", "<fp>.squashfs"). */
  files: { metadata: string; rootfs?: string };
}

/** What the store keeps at image-aliases/<project>/<name>. */
export interface AliasRecord {
  name: string;
  description: string;
  target: string;
}

/** Go's zero time, which LXD sends for "never" (last_used_at of an unused image). */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

/** A Unix-seconds timestamp as LXD's JSON time (RFC 3339, UTC, no fraction when whole). */
export function unixToTime(secs: number): string {
  return new Date(secs * 1000).toISOString().replace(".000Z", "Z");
}

export function nowTime(): string {
  return new Date().toISOString();
}

export const imageKey = (project: string, fp: string) => `images/${project}/${fp}`;
export const imagePrefix = (project: string) => `images/${project}/`;
export const aliasKey = (project: string, name: string) => `image-aliases/${project}/${name}`;
export const aliasPrefix = (project: string) => `image-aliases/${project}/`;

/** The API URL of an image or alias (with ?project= outside the default project, as LXD). */
export function imageUrl(fp: string, project: string): string {
  return `/1.0/images/${fp}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;
}
export function aliasUrl(name: string, project: string): string {
  return `/1.0/images/aliases/${encodeURIComponent(name)}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;
}
