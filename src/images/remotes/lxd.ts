import { ApiError, badRequest } from "../../api/errors.js";
import type { ImageType } from "../format.js";
import { MultipartReader, multipartBoundary } from "../multipart.js";
import type { Image, ImageAliasEntry } from "../types.js";
import { getJson, parseEndpoint, request, type Endpoint } from "./http.js";
import type { RemoteDownload, RemoteImage, RemoteImageServer } from "./remote.js";

/**
 * Another LXD-API server (LXD, Incus in LXD mode, or a second lodged) as an image source:
 * GET /1.0/images/aliases/<name>, GET /1.0/images/<fp> and GET /1.0/images/<fp>/export, the
 * way LXD's own daemon pulls from a "public" remote. Over https:// Lodge connects without a
 * client certificate, so only public images (or private ones with a one-time `secret`) are
 * visible; over unix:// (another daemon on this host) the socket's permissions decide.
 */
export class LxdServer implements RemoteImageServer {
  readonly protocol = "lxd";

  constructor(
    readonly endpoint: Endpoint,
    private readonly opts: { secret?: string; project?: string } = {},
  ) {}

  static connect(server: string, opts: { certificate?: string; secret?: string; project?: string } = {}): LxdServer {
    const ep = parseEndpoint(server, { certificate: opts.certificate, allowHttp: false });
    return new LxdServer(ep, opts);
  }

  private path(p: string, extra: Record<string, string> = {}): string {
    const q = new URLSearchParams(extra);
    if (this.opts.project && this.opts.project !== "default") q.set("project", this.opts.project);
    const s = q.toString();
    return `1.0/${p}${s ? `?${s}` : ""}`;
  }

  private secretQuery(): Record<string, string> {
    return this.opts.secret ? { secret: this.opts.secret } : {};
  }

  async resolveAlias(name: string, type?: string, signal?: AbortSignal): Promise<string | undefined> {
    // With a secret the reference is a fingerprint: aliases of private images are not visible.
    if (this.opts.secret) return undefined;
    try {
      const a = await this.metadata<ImageAliasEntry>(this.path(`images/aliases/${encodeURIComponent(name)}`), signal);
      if (type && a.type && a.type !== type) return undefined;
      return a.target;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  async image(ref: string, signal?: AbortSignal): Promise<RemoteImage> {
    if (!/^[0-9a-fA-F]{1,64}$/.test(ref)) throw new ApiError(404, `Image "${ref}" not found on ${this.endpoint.server}`);
    const img = await this.metadata<Image>(this.path(`images/${ref.toLowerCase()}`, this.secretQuery()), signal);
    if (!img || typeof img.fingerprint !== "string" || !/^[0-9a-f]{64}$/.test(img.fingerprint))
      throw new ApiError(502, `Invalid image description from ${this.endpoint.server}`);
    return {
      fingerprint: img.fingerprint,
      type: img.type === "virtual-machine" ? "virtual-machine" : "container",
      architecture: img.architecture,
      public: !!img.public,
      size: Number(img.size ?? 0),
      filename: img.filename ?? "",
      created_at: img.created_at,
      expires_at: img.expires_at,
      properties: { ...(img.properties ?? {}) },
      aliases: (img.aliases ?? []).map((a) => a.name),
    };
  }

  /** The export: a unified tarball as the body, or multipart/form-data with metadata and rootfs(.img) parts. */
  async download(img: RemoteImage, signal?: AbortSignal): Promise<RemoteDownload> {
    const res = await request(this.endpoint, this.path(`images/${img.fingerprint}/export`, this.secretQuery()), { signal });
    const boundary = multipartBoundary(res.headers["content-type"]);
    if (!boundary) return { metadata: res.body, metadataSize: res.length ?? (img.size || undefined) };
    const parts = new MultipartReader(res.body, boundary);
    const meta = await parts.next();
    if (!meta || meta.name !== "metadata") throw new ApiError(502, `Invalid export from ${this.endpoint.server}: the first part is not "metadata"`);
    let type: ImageType | undefined;
    return {
      metadata: meta.data,
      type: img.type,
      rootfs: async () => {
        const root = await parts.next();
        if (!root || (root.name !== "rootfs" && root.name !== "rootfs.img"))
          throw new ApiError(502, `Invalid export from ${this.endpoint.server}: the rootfs part is missing`);
        type = root.name === "rootfs.img" ? "virtual-machine" : "container";
        if (type !== img.type) throw new ApiError(502, `Invalid export from ${this.endpoint.server}: a ${type} rootfs for a ${img.type} image`);
        return root.data;
      },
    };
  }

  /** GET of an LXD endpoint; returns the envelope's metadata. */
  private async metadata<T>(path: string, signal?: AbortSignal): Promise<T> {
    const env = await getJson<{ type?: string; metadata?: T; error?: string }>(this.endpoint, path, { signal, limit: 16 * 1024 * 1024 });
    if (env.type !== "sync" || env.metadata === undefined)
      throw new ApiError(502, `Unexpected answer from ${this.endpoint.server}: ${env.error || "not an LXD sync response"}`);
    return env.metadata;
  }
}

/** Rejects protocols other than LXD's two. */
export function checkProtocol(protocol: string | undefined): "lxd" | "simplestreams" {
  const p = protocol || "lxd";
  if (p !== "lxd" && p !== "simplestreams") throw badRequest(`Invalid image source protocol "${p}": use "lxd" or "simplestreams"`);
  return p;
}
