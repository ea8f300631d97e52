import type { ImageStore } from "./store.js";
import type { Image, ImageAlias } from "./types.js";

/**
 * The seam for `POST /1.0/images` with a JSON body: `source.type` selects an ImageSource
 * ("image" for simplestreams / LXD remotes, "url" for direct downloads; instance publishing
 * later). The images route looks the type up in the table it was given; an unknown type is
 * refused with 400 "not supported yet".
 *
 * A source fetches the image's files and hands them to the store, with one of:
 *   - store.importFromStreams({ project, metadata, rootfs?, ... })  streams, e.g. HTTP bodies;
 *   - store.stage() → staging.receive("metadata"|"rootfs", stream, {onProgress}) →
 *     store.commit(staging, {...})  when the parts arrive one at a time;
 *   - store.addImage({ project, metadataPath, rootfsPath?, ... })  files already on disk.
 * All validate the files (safe members, metadata.yaml), verify `expectedFingerprint` when
 * given, and leave nothing behind on failure. Report progress through `ctx.updateMetadata`
 * with a key ending in "_progress" (LXD uses "download_progress"), e.g. via progressText().
 * The store emits image-created on commit; pass `aliases` in the commit options to create them
 * atomically with the image, otherwise the route creates the missing `req.aliases` afterwards.
 */
export interface ImageSource {
  /** Imports the image described by `req` and returns the stored image. */
  import(req: ImagesPostJson, ctx: ImageSourceContext): Promise<Image>;
}

export interface ImageSourceContext {
  project: string;
  store: ImageStore;
  /** The running operation (structurally the daemon's OperationContext). */
  op: { readonly signal: AbortSignal; updateMetadata(patch: Record<string, unknown>): void };
}

/** The JSON body of POST /1.0/images (reference: definitions/ImagesPost). */
export interface ImagesPostJson {
  auto_update?: boolean;
  properties?: Record<string, string>;
  public?: boolean;
  expires_at?: string;
  profiles?: string[];
  filename?: string;
  compression_algorithm?: string;
  aliases?: ImageAlias[];
  source?: {
    type?: string;
    mode?: string;
    url?: string;
    name?: string;
    fingerprint?: string;
    secret?: string;
    project?: string;
    alias?: string;
    certificate?: string;
    protocol?: string;
    server?: string;
    image_type?: string;
  };
}
