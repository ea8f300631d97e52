/**
 * Image references as lxc takes them: `[remote:]alias-or-fingerprint-prefix`. A reference is
 * resolved as an alias first, then as a fingerprint prefix (the server accepts unique prefixes).
 */
import { ApiError } from "../api/errors.js";
import type { LodgeClient } from "../client/client.js";
import type { Image, ImageAliasEntry } from "../images/types.js";
import { getRemote, isLocal, RemoteConfigError, type Remote, type RemoteConfig } from "./remote-config.js";

export interface ImageRef {
  /** The remote's name (the default remote when none was written). */
  remote: string;
  /** Alias or fingerprint prefix; "" for a bare "remote:". */
  name: string;
}

/**
 * Splits `remote:name` at the first ":" (as lxc does); no ":" means the default remote. An
 * unknown remote is an error naming it.
 */
export function parseImageRef(text: string, cfg: RemoteConfig): ImageRef {
  const colon = text.indexOf(":");
  if (colon === -1) return { remote: cfg.defaultRemote, name: text };
  const remote = text.slice(0, colon);
  getRemote(cfg, remote);
  return { remote, name: text.slice(colon + 1) };
}

/** A lowercase hex string: what a fingerprint (or a prefix of one) looks like. */
export const looksLikeFingerprint = (s: string) => /^[0-9a-f]+$/i.test(s);

/** The reference's remote, which must be the local daemon for commands that manage images. */
export function localRemote(ref: ImageRef, cfg: RemoteConfig, what: string): Remote {
  const r = getRemote(cfg, ref.remote);
  if (!isLocal(r))
    throw new RemoteConfigError(
      `Remote "${ref.remote}" is an image source (${r.addr}); ${what} works on local images only (copy it first: lodge image copy ${ref.remote}:${ref.name || "IMAGE"} local:)`,
    );
  return r;
}

/** The fingerprint an alias or fingerprint prefix names on the daemon; 404 naming it otherwise. */
export async function resolveFingerprint(client: LodgeClient, name: string): Promise<string> {
  if (!name) throw new ApiError(400, "No image given: name an alias or a fingerprint");
  const alias = await client.raw<ImageAliasEntry>("GET", `/1.0/images/aliases/${encodeURIComponent(name)}`);
  if (alias.body.type === "sync" && alias.status === 200) return alias.body.metadata.target;
  if (looksLikeFingerprint(name)) {
    const img = await client.raw<Image>("GET", `/1.0/images/${name.toLowerCase()}`);
    if (img.body.type === "sync" && img.status === 200) return img.body.metadata.fingerprint;
    // An ambiguous prefix says so; anything else is "not found" below.
    if (img.body.type === "error" && img.status !== 404) throw new ApiError(img.status, img.body.error);
  }
  throw new ApiError(404, `Image "${name}" not found`);
}

/** The image an alias or fingerprint prefix names, with its ETag. */
export async function fetchImage(client: LodgeClient, name: string): Promise<{ image: Image; etag?: string }> {
  const fp = await resolveFingerprint(client, name);
  const r = await client.raw<Image>("GET", `/1.0/images/${fp}`);
  if (r.body.type === "error") throw new ApiError(r.status, r.body.error);
  const etag = r.headers.etag;
  return { image: r.body.metadata, etag: typeof etag === "string" ? etag : undefined };
}
