import type { ImageType } from "../format.js";
import { lxdArchitecture } from "../builder/architecture.js";
import { getJson, parseEndpoint, request, type Endpoint } from "./http.js";
import { ApiError, badRequest, notFound } from "../../api/errors.js";
import { verifySha256, type RemoteDownload, type RemoteFile, type RemoteImage, type RemoteImageServer } from "./remote.js";

/**
 * Simplestreams as LXD reads it (images.linuxcontainers.org, cloud-images.ubuntu.com):
 * `streams/v1/index.json` lists indices; those of datatype "image-downloads" point at a
 * products file (`streams/v1/images.json`). Each product (os/release/arch/variant) has
 * versions named by serial ("20240101_12:00"); a version's items are files. An LXD image is
 * either one `lxd_combined.tar.gz` item (unified, fingerprint = its sha256) or an `lxd.tar.xz`
 * metadata item plus one rootfs item (`squashfs`, `root.tar.xz`, `disk-kvm.img`, `disk1.img`,
 * `uefi1.img`); the split image's fingerprint is stored on the metadata item in the
 * `combined_<rootfs>_sha256` field that matches the rootfs, and every item has its own sha256.
 */

export interface StreamIndex {
  format?: string;
  updated?: string;
  index: Record<string, { datatype: string; path: string; products?: string[]; format?: string; updated?: string }>;
}

export interface ProductsFile {
  content_id?: string;
  datatype?: string;
  format?: string;
  products: Record<string, Product>;
}

export interface Product {
  aliases?: string;
  arch: string;
  os?: string;
  release?: string;
  release_title?: string;
  release_codename?: string;
  version?: string;
  variant?: string;
  support_eol?: string;
  lxd_requirements?: Record<string, string>;
  versions?: Record<string, ProductVersion>;
}

export interface ProductVersion {
  label?: string;
  pubname?: string;
  items?: Record<string, ProductItem>;
}

export interface ProductItem {
  ftype: string;
  path: string;
  sha256?: string;
  size?: number;
  combined_sha256?: string;
  combined_rootxz_sha256?: string;
  combined_squashfs_sha256?: string;
  "combined_disk-kvm-img_sha256"?: string;
  "combined_disk1-img_sha256"?: string;
  "combined_uefi1-img_sha256"?: string;
}

/** Rootfs item types, in LXD's order of preference, with the metadata field holding the split fingerprint. */
const ROOTFS_TYPES: Record<string, { combined: (m: ProductItem) => string | undefined; type: ImageType }> = {
  squashfs: { combined: (m) => m.combined_squashfs_sha256, type: "container" },
  "root.tar.xz": { combined: (m) => m.combined_rootxz_sha256 || m.combined_sha256, type: "container" },
  "disk-kvm.img": { combined: (m) => m["combined_disk-kvm-img_sha256"], type: "virtual-machine" },
  "uefi1.img": { combined: (m) => m["combined_uefi1-img_sha256"], type: "virtual-machine" },
  "disk1.img": { combined: (m) => m["combined_disk1-img_sha256"], type: "virtual-machine" },
};
const ROOTFS_PREFERENCE = Object.keys(ROOTFS_TYPES);

/** The products files an index points at (datatype image-downloads, with products). */
export function productPaths(index: StreamIndex): string[] {
  if (!index || typeof index !== "object" || typeof index.index !== "object" || index.index === null)
    throw new ApiError(502, "Invalid simplestreams index: no \"index\" map");
  return Object.values(index.index)
    .filter((e) => e && e.datatype === "image-downloads" && typeof e.path === "string" && (e.products?.length ?? 0) > 0)
    .map((e) => e.path);
}

/** Serial "20240101_12:00" → RFC 3339 midnight of its date (what LXD uses as created_at), or undefined. */
function serialDate(serial: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})/.exec(serial);
  if (!m) return undefined;
  const d = new Date(`${m[1]}-${m[2]}-${m[3]}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString().replace(".000Z", "Z");
}

/** Every LXD image a products file describes (unknown architectures and malformed versions are skipped). */
export function productsToImages(products: ProductsFile): RemoteImage[] {
  if (!products || typeof products.products !== "object" || products.products === null)
    throw new ApiError(502, "Invalid simplestreams products file: no \"products\" map");
  const out: RemoteImage[] = [];
  for (const product of Object.values(products.products)) {
    const architecture = product && typeof product.arch === "string" ? lxdArchitecture(product.arch) : undefined;
    if (!architecture) continue;
    for (const [serial, version] of Object.entries(product.versions ?? {})) {
      const created = serialDate(serial);
      if (!created) continue;
      const items = Object.values(version?.items ?? {}).filter((i) => i && typeof i.ftype === "string");
      const image = (meta: ProductItem, root?: ProductItem) => {
        const img = toImage(product, architecture, serial, created, version, meta, root);
        if (img) out.push(img);
      };
      for (const item of items) {
        if (item.ftype === "lxd_combined.tar.gz") image(item);
        if (item.ftype === "lxd.tar.xz") for (const root of items) if (root.ftype in ROOTFS_TYPES) image(item, root);
      }
    }
  }
  return out;
}

function toImage(
  product: Product,
  architecture: string,
  serial: string,
  created: string,
  version: ProductVersion,
  meta: ProductItem,
  root: ProductItem | undefined,
): RemoteImage | undefined {
  const fingerprint = (root ? ROOTFS_TYPES[root.ftype]!.combined(meta) : meta.sha256)?.toLowerCase();
  if (!fingerprint || !/^[0-9a-f]{64}$/.test(fingerprint) || !meta.path) return undefined;
  if (!meta.sha256 || (root && (!root.sha256 || !root.path))) return undefined;
  let description = `${product.os ?? ""} ${product.release_title ?? product.release ?? ""} ${product.arch}`;
  if (version.label) description += ` (${version.label})`;
  description += ` (${serial})`;
  const properties: Record<string, string> = {
    os: product.os ?? "",
    release: product.release ?? "",
    version: product.version ?? "",
    architecture: product.arch,
    label: version.label ?? "",
    serial,
    description,
    variant: product.variant ?? "",
    type: root ? root.ftype : "tar.gz",
  };
  for (const [k, v] of Object.entries(product.lxd_requirements ?? {})) properties[`requirements.${k}`] = String(v);
  for (const k of Object.keys(properties)) if (properties[k] === "") delete properties[k];
  const files: RemoteFile[] = [{ part: "metadata", path: meta.path, sha256: meta.sha256.toLowerCase(), size: Number(meta.size ?? 0) }];
  if (root) files.push({ part: "rootfs", path: root.path, sha256: root.sha256!.toLowerCase(), size: Number(root.size ?? 0) });
  const eol = product.support_eol && /^\d{4}-\d{2}-\d{2}$/.test(product.support_eol) ? `${product.support_eol}T00:00:00Z` : undefined;
  return {
    fingerprint,
    type: root ? ROOTFS_TYPES[root.ftype]!.type : "container",
    architecture,
    public: true,
    size: files.reduce((n, f) => n + f.size, 0),
    filename: meta.path.split("/").pop()!,
    created_at: created,
    expires_at: eol,
    properties,
    aliases: (product.aliases ?? "").split(",").map((a) => a.trim()).filter(Boolean),
    files,
  };
}

/**
 * Orders images as LXD does before handing out aliases: by os, release, variant, newest serial
 * first, architecture, then the preferred rootfs type; the first image to claim an alias keeps it.
 */
export function sortImages(images: readonly RemoteImage[]): RemoteImage[] {
  const rank = (t: string | undefined) => {
    const i = ROOTFS_PREFERENCE.indexOf(t ?? "");
    return i < 0 ? ROOTFS_PREFERENCE.length : i;
  };
  return [...images].sort((a, b) => {
    for (const k of ["os", "release", "variant", "serial", "architecture"]) {
      const x = a.properties[k] ?? "";
      const y = b.properties[k] ?? "";
      if (x === y) continue;
      if (x === "") return 1;
      if (y === "") return -1;
      return k === "serial" ? (x > y ? -1 : 1) : x < y ? -1 : 1;
    }
    return rank(a.properties.type) - rank(b.properties.type);
  });
}

export interface AliasEntry {
  name: string;
  target: string;
  type: ImageType;
  architecture: string;
}

/**
 * The alias table: each product alias "a" gives "a/<arch>" (the product's own architecture
 * name, e.g. "debian/12/amd64") for every architecture, and the short "a" for images of the
 * host's architecture. Newest first, so an alias always names the latest serial.
 */
export function aliasTable(images: readonly RemoteImage[], hostArch: string): AliasEntry[] {
  const out: AliasEntry[] = [];
  const add = (name: string, img: RemoteImage) => {
    if (out.some((e) => e.name === name && e.type === img.type && e.architecture === img.architecture)) return;
    out.push({ name, target: img.fingerprint, type: img.type, architecture: img.architecture });
  };
  for (const img of sortImages(images))
    for (const a of img.aliases) {
      if (img.architecture === hostArch) add(a, img);
      add(`${a}/${img.properties.architecture ?? img.architecture}`, img);
    }
  return out;
}

/** Finds an alias of the given type (any type when undefined); 404 when none, 400 when both types match and none was asked for. */
export function findAlias(table: readonly AliasEntry[], name: string, type?: string): AliasEntry {
  const hits = table.filter((e) => e.name === name && (!type || e.type === type));
  if (hits.length === 0) throw notFound(`Image alias "${name}" not found on the image server`);
  if (!type && new Set(hits.map((h) => h.type)).size > 1)
    throw badRequest(`Alias "${name}" names both a container and a virtual-machine image; choose the type`);
  return hits[0]!;
}

/** Finds an image by fingerprint or unique prefix. */
export function findImage(images: readonly RemoteImage[], ref: string): RemoteImage {
  const prefix = ref.toLowerCase();
  const hits = new Map<string, RemoteImage>();
  for (const i of images) if (i.fingerprint.startsWith(prefix)) hits.set(i.fingerprint, i);
  if (hits.size === 0) throw notFound(`Image "${ref}" not found on the image server`);
  if (hits.size > 1) throw badRequest(`More than one image on the image server matches "${ref}"`);
  return [...hits.values()][0]!;
}

/** A simplestreams server, its catalogue read once per client (clients live for one request). */
export class SimpleStreamsServer implements RemoteImageServer {
  readonly protocol = "simplestreams";
  private catalogue?: Promise<{ images: RemoteImage[]; aliases: AliasEntry[] }>;

  constructor(
    readonly endpoint: Endpoint,
    private readonly hostArch: string,
  ) {}

  static connect(server: string, opts: { certificate?: string; hostArch: string }): SimpleStreamsServer {
    const ep = parseEndpoint(server, { certificate: opts.certificate });
    if (ep.socketPath) throw badRequest("Invalid image server: simplestreams is served over http(s), not a unix socket");
    return new SimpleStreamsServer(ep, opts.hostArch);
  }

  private load(signal?: AbortSignal) {
    this.catalogue ??= (async () => {
      const index = await getJson<StreamIndex>(this.endpoint, "streams/v1/index.json", { signal });
      const images: RemoteImage[] = [];
      for (const path of productPaths(index))
        images.push(...productsToImages(await getJson<ProductsFile>(this.endpoint, path, { signal })));
      return { images, aliases: aliasTable(images, this.hostArch) };
    })();
    this.catalogue.catch(() => (this.catalogue = undefined));
    return this.catalogue;
  }

  async images(signal?: AbortSignal): Promise<RemoteImage[]> {
    return (await this.load(signal)).images;
  }

  async resolveAlias(name: string, type?: string, signal?: AbortSignal): Promise<string | undefined> {
    const { aliases } = await this.load(signal);
    try {
      return findAlias(aliases, name, type).target;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  async image(ref: string, signal?: AbortSignal): Promise<RemoteImage> {
    const img = findImage((await this.load(signal)).images, ref);
    const aliases = (await this.load(signal)).aliases.filter((a) => a.target === img.fingerprint).map((a) => a.name);
    return { ...img, aliases };
  }

  /** Fetches the metadata file, then (when split) the rootfs, each checked against its sha256. */
  async download(img: RemoteImage, signal?: AbortSignal): Promise<RemoteDownload> {
    const [meta, root] = [img.files?.find((f) => f.part === "metadata"), img.files?.find((f) => f.part === "rootfs")];
    if (!meta) throw new ApiError(502, `The image server lists no files for ${img.fingerprint}`);
    const open = async (f: RemoteFile) => {
      const res = await request(this.endpoint, f.path, { signal });
      return verifySha256(res.body, f.sha256 ?? "", f.path);
    };
    return {
      metadata: await open(meta),
      metadataSize: meta.size || undefined,
      rootfs: root ? () => open(root) : undefined,
      rootfsSize: root?.size || undefined,
      type: img.type,
    };
  }
}
