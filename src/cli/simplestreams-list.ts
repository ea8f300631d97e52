/**
 * Reading a simplestreams image server's catalogue from the client (`lodge image list
 * images:`): streams/v1/index.json names the products file; each product's newest version
 * becomes one image per type it offers, with LXD's fingerprint (the combined sha256 the
 * server publishes), so the list matches what `image copy` would fetch.
 */
import { ApiError } from "../api/errors.js";
import type { Image } from "../images/types.js";

interface SsItem {
  ftype: string;
  size?: number;
  combined_sha256?: string;
  combined_squashfs_sha256?: string;
  combined_rootxz_sha256?: string;
  "combined_disk-kvm-img_sha256"?: string;
}

interface SsProduct {
  aliases?: string;
  arch?: string;
  os?: string;
  release?: string;
  release_title?: string;
  variant?: string;
  versions?: Record<string, { items?: Record<string, SsItem> }>;
}

/** Debian's architecture names (used by image servers) to LXD's. */
const ARCHES: Record<string, string> = {
  amd64: "x86_64",
  arm64: "aarch64",
  armhf: "armv7l",
  i386: "i686",
  ppc64el: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
};

async function getJson<T>(url: string): Promise<T> {
  let res: globalThis.Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
    throw new ApiError(503, `Cannot reach ${url}: ${cause}`);
  }
  if (!res.ok) throw new ApiError(res.status, `${url}: ${res.status} ${res.statusText}`);
  try {
    return (await res.json()) as T;
  } catch {
    throw new ApiError(502, `${url}: not a simplestreams JSON document`);
  }
}

/** "20240131_14:05" → RFC 3339 (the version names a build time). */
function versionTime(v: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})(?:_(\d{2}):?(\d{2}))?/.exec(v);
  if (!m) return "0001-01-01T00:00:00Z";
  return `${m[1]}-${m[2]}-${m[3]}T${m[4] ?? "00"}:${m[5] ?? "00"}:00Z`;
}

/** The images a product's newest usable version offers (a container, a VM, or both). */
export function productImages(product: SsProduct): Image[] {
  const versions = Object.keys(product.versions ?? {}).sort().reverse();
  for (const v of versions) {
    const items = Object.values(product.versions![v]!.items ?? {});
    const meta = items.find((i) => i.ftype === "lxd.tar.xz");
    if (!meta) continue;
    const out: Image[] = [];
    const add = (type: Image["type"], fingerprint: string | undefined, rootfs: SsItem | undefined) => {
      if (!fingerprint || !rootfs) return;
      out.push(productImage(product, v, type, fingerprint, (meta.size ?? 0) + (rootfs.size ?? 0)));
    };
    const squash = items.find((i) => i.ftype === "squashfs");
    const rootxz = items.find((i) => i.ftype === "root.tar.xz");
    if (squash) add("container", meta.combined_squashfs_sha256 ?? meta.combined_sha256, squash);
    else add("container", meta.combined_rootxz_sha256 ?? meta.combined_sha256, rootxz);
    add("virtual-machine", meta["combined_disk-kvm-img_sha256"], items.find((i) => i.ftype === "disk-kvm.img"));
    if (out.length) return out;
  }
  return [];
}

function productImage(p: SsProduct, version: string, type: Image["type"], fingerprint: string, size: number): Image {
  const arch = ARCHES[p.arch ?? ""] ?? p.arch ?? "";
  const when = versionTime(version);
  const description = `${p.os ?? ""} ${p.release_title ?? p.release ?? ""} ${p.arch ?? ""} (${p.variant ?? "default"}) (${version})`;
  return {
    fingerprint,
    aliases: (p.aliases ?? "")
      .split(",")
      .map((a) => a.trim())
      .filter(Boolean)
      .map((name) => ({ name, description: "" })),
    architecture: arch,
    cached: false,
    filename: "",
    size,
    type,
    created_at: when,
    uploaded_at: when,
    last_used_at: "0001-01-01T00:00:00Z",
    expires_at: "0001-01-01T00:00:00Z",
    auto_update: false,
    public: true,
    profiles: [],
    properties: {
      architecture: p.arch ?? "",
      description: description.replace(/\s+/g, " ").trim(),
      os: p.os ?? "",
      release: p.release ?? "",
      serial: version,
      type: type === "virtual-machine" ? "disk-kvm.img" : "squashfs",
      variant: p.variant ?? "",
    },
  };
}

/** Every image the server at `addr` offers, newest version of each product. */
export async function listSimplestreams(addr: string): Promise<Image[]> {
  const index = await getJson<{ index?: Record<string, { datatype?: string; path?: string }> }>(`${addr}/streams/v1/index.json`);
  const paths = Object.values(index.index ?? {})
    .filter((e) => e.datatype === "image-downloads" && e.path)
    .map((e) => e.path!);
  if (paths.length === 0) throw new ApiError(502, `${addr} lists no image downloads in streams/v1/index.json`);
  const out: Image[] = [];
  for (const path of paths) {
    const doc = await getJson<{ products?: Record<string, SsProduct> }>(`${addr}/${path.replace(/^\/+/, "")}`);
    for (const product of Object.values(doc.products ?? {})) out.push(...productImages(product));
  }
  return out;
}
