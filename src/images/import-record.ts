/** What an import is told about the image it stores, and the record it makes of it. */
import type { ImageType } from "./format.js";
import type { InspectedImage } from "./inspect.js";
import { nowTime, unixToTime, ZERO_TIME, type ImageAlias, type ImageRecord, type ImageSourceInfo } from "./types.js";

/** How an imported image is recorded. */
export interface CommitOptions {
  project: string;
  /** Original file name (X-LXD-filename). */
  filename?: string;
  public?: boolean;
  autoUpdate?: boolean;
  /** Merged over metadata.yaml's properties (X-LXD-properties does this). */
  properties?: Record<string, string>;
  /** The fingerprint the sender announced; the import fails unless the data hashes to it. */
  expectedFingerprint?: string;
  /** The type the sender declared (a split upload's "rootfs" vs "rootfs.img" part). */
  type?: ImageType;
  /** Cached from a remote (deleted when unused, as LXD's cached images). */
  cached?: boolean;
  updateSource?: ImageSourceInfo;
  aliases?: ImageAlias[];
  profiles?: string[];
  /** RFC 3339; overrides metadata.yaml's expiry_date. */
  expiresAt?: string;
  signal?: AbortSignal;
}

/** The record of an image with fingerprint `fp` and `size` bytes of files, as `inspected` and `opts` describe it. */
export function importRecord(fp: string, size: number, inspected: InspectedImage, opts: CommitOptions): ImageRecord {
  const md = inspected.metadata;
  return {
    fingerprint: fp,
    filename: opts.filename ?? "",
    size,
    architecture: md.architecture,
    type: inspected.type,
    created_at: unixToTime(md.creation_date),
    expires_at: opts.expiresAt ?? unixToTime(md.expiry_date),
    uploaded_at: nowTime(),
    last_used_at: ZERO_TIME,
    public: opts.public ?? false,
    auto_update: opts.autoUpdate ?? false,
    cached: opts.cached ?? false,
    properties: { ...md.properties, ...opts.properties },
    profiles: opts.profiles ?? ["default"],
    ...(opts.updateSource ? { update_source: opts.updateSource } : {}),
    files: { metadata: inspected.metadataFormat.ext, ...(inspected.rootfsFormat ? { rootfs: inspected.rootfsFormat.ext } : {}) },
  };
}
