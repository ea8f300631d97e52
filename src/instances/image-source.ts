/**
 * Instances created from an image on another server (`source.server`, as `lxc launch
 * images:debian/12 c1` sends): the image is pulled into this server's store first — as a
 * cached image, auto-updated like LXD's (images.auto_update_cached) — and the instance is made
 * from the local copy. The pull runs inside the create operation, with its download progress.
 */
import { badRequest } from "../api/errors.js";
import type { InstanceSource } from "../api/instance.js";
import { connectRemote, pullImage } from "../images/remotes/source.js";
import { hostArchitecture } from "../images/remotes/remote.js";
import type { ImageStore } from "../images/store.js";
import type { Image } from "../images/types.js";

export interface RemoteImageRef {
  server: string;
  protocol?: string;
  /** Alias or fingerprint, as given. */
  ref: string;
  certificate?: string;
  secret?: string;
  project?: string;
}

/** Checks a remote image source of a create request; undefined when the image is local. */
export function remoteImageRef(src: InstanceSource): RemoteImageRef | undefined {
  if (!src.server) return undefined;
  if (src.mode && src.mode !== "pull") throw badRequest(`Image source mode "${src.mode}" is not supported yet; use pull`);
  if (src.protocol && src.protocol !== "lxd" && src.protocol !== "simplestreams")
    throw badRequest(`Unknown image server protocol "${String(src.protocol)}": use lxd or simplestreams`);
  const ref = src.fingerprint || src.alias;
  if (!ref) throw badRequest("The image source needs an alias or a fingerprint");
  if (!/^(https:\/\/|unix:\/\/)/.test(src.server)) throw badRequest(`Image server "${src.server}" must be an https:// or unix:// address`);
  return { server: src.server, protocol: src.protocol, ref, certificate: src.certificate, secret: src.secret, project: src.project };
}

export interface PullContext {
  readonly signal: AbortSignal;
  updateMetadata(patch: Record<string, unknown>): void;
}

/** Pulls the image into the project's store (or finds it there) and returns it. */
export async function pullInstanceImage(store: ImageStore, project: string, r: RemoteImageRef, op?: PullContext): Promise<Image> {
  const hostArch = hostArchitecture();
  const server = connectRemote(r.protocol, r.server, { certificate: r.certificate, secret: r.secret, project: r.project, hostArch });
  const { image } = await pullImage({
    project,
    store,
    server,
    serverUrl: r.server,
    certificate: r.certificate,
    ref: r.ref,
    imageType: "container",
    cached: true,
    autoUpdate: true,
    op,
  });
  return image;
}
