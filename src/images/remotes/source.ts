import { badRequest, ApiError } from "../../api/errors.js";
import { progressText, type TransferProgress } from "../progress.js";
import type { ImageSource, ImageSourceContext, ImagesPostJson } from "../source.js";
import type { ImageStore } from "../store.js";
import type { Image, ImageAlias, ImageSourceInfo } from "../types.js";
import { isFingerprint } from "../fingerprint.js";
import { parseEndpoint, request, USER_AGENT } from "./http.js";
import { checkProtocol, LxdServer } from "./lxd.js";
import { hostArchitecture, verifySha256, type RemoteImage, type RemoteImageServer } from "./remote.js";
import { SimpleStreamsServer } from "./simplestreams.js";
import { LODGE_VERSION } from "../../version.js";

/** What the remote sources need to know about the host. */
export interface RemoteSourceOptions {
  /** LXD's name of the host architecture (default: this process's). */
  hostArch?: string;
}

/** Connects to an image server by protocol (the `lxd` client is public: no client certificate). */
export function connectRemote(
  protocol: string | undefined,
  server: string,
  opts: { certificate?: string; secret?: string; project?: string; hostArch: string },
): RemoteImageServer {
  const p = checkProtocol(protocol);
  return p === "simplestreams"
    ? SimpleStreamsServer.connect(server, { certificate: opts.certificate, hostArch: opts.hostArch })
    : LxdServer.connect(server, opts);
}

/** The operation-metadata progress LXD's client prints: "metadata: 45% (1.20MB/s)". */
function downloadProgress(ctx: ImageSourceContext["op"] | undefined) {
  return (p: TransferProgress) => ctx?.updateMetadata({ download_progress: `${p.part === "rootfs" ? "rootfs" : "metadata"}: ${progressText(p)}` });
}

export interface PullOptions {
  project: string;
  store: ImageStore;
  server: RemoteImageServer;
  /** The server address as given (recorded in update_source). */
  serverUrl: string;
  certificate?: string;
  /** Alias or fingerprint (prefix) as the user gave it. */
  ref: string;
  /** container | virtual-machine when the user chose. */
  imageType?: string;
  public?: boolean;
  autoUpdate?: boolean;
  cached?: boolean;
  aliases?: ImageAlias[];
  properties?: Record<string, string>;
  profiles?: string[];
  op?: ImageSourceContext["op"];
}

/** What a pull found: the remote image, and the local one (new, or already there). */
export interface PullResult {
  remote: RemoteImage;
  image: Image;
  downloaded: boolean;
}

/**
 * Resolves `ref` on the server (alias of the requested type first, then fingerprint prefix) and
 * imports the image unless the project already has it. As LXD: an image asked for by alias
 * records its source (update_source) and may auto-update; one asked for by fingerprint does not.
 */
export async function pullImage(o: PullOptions): Promise<PullResult> {
  const signal = o.op?.signal;
  const target = await o.server.resolveAlias(o.ref, o.imageType, signal);
  const remote = await o.server.image(target ?? o.ref, signal);
  if (o.imageType && remote.type !== o.imageType)
    throw badRequest(`Image "${o.ref}" is a ${remote.type} image, not a ${o.imageType} one`);
  const existing = await o.store.get(o.project, remote.fingerprint).catch((e: unknown) => {
    if (e instanceof ApiError && e.status === 404) return undefined;
    throw e;
  });
  if (existing) return { remote, image: existing, downloaded: false };

  const byAlias = target !== undefined && !remote.fingerprint.startsWith(o.ref.toLowerCase());
  const updateSource: ImageSourceInfo | undefined = byAlias
    ? { alias: o.ref, certificate: o.certificate ?? "", protocol: o.server.protocol, server: o.serverUrl, image_type: remote.type }
    : undefined;
  const dl = await o.server.download(remote, signal);
  const image = await o.store.importFromStreams({
    project: o.project,
    metadata: dl.metadata,
    metadataSize: dl.metadataSize,
    rootfs: dl.rootfs,
    rootfsSize: dl.rootfsSize,
    type: dl.type ?? remote.type,
    expectedFingerprint: remote.fingerprint,
    filename: remote.filename || undefined,
    public: o.public ?? false,
    autoUpdate: byAlias ? (o.autoUpdate ?? false) : false,
    cached: o.cached ?? false,
    properties: { ...remote.properties, ...o.properties },
    profiles: o.profiles,
    expiresAt: usableTime(remote.expires_at),
    updateSource,
    aliases: o.aliases,
    onProgress: downloadProgress(o.op),
    signal,
  });
  return { remote, image, downloaded: true };
}

/** An expiry time worth keeping (LXD sends the Unix epoch or Go's zero time for "none"). */
function usableTime(t: string | undefined): string | undefined {
  if (!t) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) || ms <= 0 ? undefined : t;
}

/** Aliases from the request that the project does not have yet (existing names are left to the route). */
async function freshAliases(store: ImageStore, project: string, aliases: ImageAlias[] | undefined): Promise<ImageAlias[] | undefined> {
  if (!aliases?.length) return undefined;
  const have = new Set((await store.aliases.records(project)).map((a) => a.name));
  return aliases.filter((a) => !have.has(a.name));
}

/** source.type = "image": a simplestreams or LXD server, by alias or fingerprint, mode pull. */
export class RemoteImageSource implements ImageSource {
  private readonly hostArch: string;

  constructor(opts: RemoteSourceOptions = {}) {
    this.hostArch = opts.hostArch ?? hostArchitecture();
  }

  async import(req: ImagesPostJson, ctx: ImageSourceContext): Promise<Image> {
    const src = req.source ?? {};
    if (src.mode && src.mode !== "pull") throw badRequest(`Image source mode "${src.mode}" is not supported yet`);
    if (!src.server) throw badRequest("Invalid image source: server is required");
    const ref = src.fingerprint || src.alias;
    if (!ref) throw badRequest("Invalid image source: give an alias or a fingerprint");
    if (src.image_type && src.image_type !== "container" && src.image_type !== "virtual-machine")
      throw badRequest(`Invalid image type "${src.image_type}": use container or virtual-machine`);
    const server = connectRemote(src.protocol, src.server, {
      certificate: src.certificate,
      secret: src.secret,
      project: src.project,
      hostArch: this.hostArch,
    });
    const { image } = await pullImage({
      project: ctx.project,
      store: ctx.store,
      server,
      serverUrl: src.server,
      certificate: src.certificate,
      ref,
      imageType: src.image_type || undefined,
      public: req.public,
      autoUpdate: req.auto_update,
      aliases: await freshAliases(ctx.store, ctx.project, req.aliases),
      properties: req.properties,
      profiles: req.profiles,
      op: ctx.op,
    });
    return image;
  }
}

/**
 * source.type = "url" (LXD's "direct" protocol): HEAD the URL with LXD-Server-Architectures;
 * the answer's LXD-Image-URL says where the image (a unified tarball) is and LXD-Image-Hash
 * what it must hash to.
 */
export class UrlImageSource implements ImageSource {
  private readonly hostArch: string;

  constructor(opts: RemoteSourceOptions = {}) {
    this.hostArch = opts.hostArch ?? hostArchitecture();
  }

  async import(req: ImagesPostJson, ctx: ImageSourceContext): Promise<Image> {
    const url = req.source?.url;
    if (!url) throw badRequest("Invalid image source: url is required");
    const ep = parseEndpoint(url);
    if (ep.socketPath) throw badRequest("Invalid image source: url must be http(s)");
    const signal = ctx.op.signal;
    const head = await request(ep, url, {
      method: "HEAD",
      signal,
      headers: { "LXD-Server-Architectures": this.hostArch, "LXD-Server-Version": LODGE_VERSION, "user-agent": USER_AGENT },
    });
    head.body.resume();
    const hash = String(head.headers["lxd-image-hash"] ?? "").toLowerCase();
    const location = String(head.headers["lxd-image-url"] ?? "");
    if (!hash) throw badRequest(`Missing LXD-Image-Hash header in the answer from ${url}`);
    if (!location) throw badRequest(`Missing LXD-Image-URL header in the answer from ${url}`);
    if (!isFingerprint(hash)) throw badRequest(`Invalid LXD-Image-Hash header from ${url}: "${hash}"`);
    const imageUrl = new URL(location, url).toString();

    const existing = await ctx.store.get(ctx.project, hash).catch(() => undefined);
    if (existing) return existing;
    const res = await request(parseEndpoint(imageUrl), imageUrl, { signal });
    return ctx.store.importFromStreams({
      project: ctx.project,
      metadata: verifySha256(res.body, hash, imageUrl),
      metadataSize: res.length,
      expectedFingerprint: hash,
      filename: decodeURIComponent(new URL(imageUrl).pathname.split("/").pop() ?? "") || undefined,
      public: req.public ?? false,
      properties: req.properties,
      profiles: req.profiles,
      aliases: await freshAliases(ctx.store, ctx.project, req.aliases),
      onProgress: downloadProgress(ctx.op),
      signal,
    });
  }
}

/** The POST /1.0/images JSON sources this module provides, by source.type. */
export function remoteImageSources(opts: RemoteSourceOptions = {}): Record<string, ImageSource> {
  return { image: new RemoteImageSource(opts), url: new UrlImageSource(opts) };
}
