import { createHash } from "node:crypto";
import { ApiError } from "../../api/errors.js";
import type { ImageType } from "../format.js";

/**
 * What the image sources need from an image server, whatever its protocol (simplestreams,
 * LXD): resolve an alias, describe an image, and hand over its files as streams.
 */
export interface RemoteImageServer {
  readonly protocol: string;
  /** The fingerprint an alias names (of the given type when set), or undefined if there is no such alias. */
  resolveAlias(name: string, type?: string, signal?: AbortSignal): Promise<string | undefined>;
  /** An image by fingerprint or unique prefix (404 when absent). */
  image(ref: string, signal?: AbortSignal): Promise<RemoteImage>;
  /** The image's files, verified as they stream (a mismatch fails the read). */
  download(img: RemoteImage, signal?: AbortSignal): Promise<RemoteDownload>;
}

export interface RemoteFile {
  part: "metadata" | "rootfs";
  path: string;
  sha256?: string;
  size: number;
}

/** An image as a server describes it (LXD's api.Image, or built from simplestreams products). */
export interface RemoteImage {
  fingerprint: string;
  type: ImageType;
  architecture: string;
  public: boolean;
  size: number;
  filename: string;
  created_at?: string;
  expires_at?: string;
  properties: Record<string, string>;
  /** Alias names pointing at the image on the server. */
  aliases: string[];
  /** The files to fetch (simplestreams); LXD servers export the image in one request. */
  files?: RemoteFile[];
}

type Chunks = AsyncIterable<Buffer | Uint8Array>;

export interface RemoteDownload {
  metadata: Chunks;
  metadataSize?: number;
  /** A split image's rootfs, opened once the metadata has been read. */
  rootfs?: () => Promise<Chunks>;
  rootfsSize?: number;
  /** The type the transfer declared (multipart part name), if any. */
  type?: ImageType;
}

/** Passes chunks through and fails at the end if their SHA-256 is not `sha256`. */
export async function* verifySha256(data: Chunks, sha256: string, what: string): AsyncGenerator<Buffer> {
  const h = createHash("sha256");
  for await (const chunk of data) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    h.update(buf);
    yield buf;
  }
  const got = h.digest("hex");
  if (got !== sha256.toLowerCase())
    throw new ApiError(400, `Hash mismatch for ${what}: the download hashes to ${got}, the server announced ${sha256}`);
}

/** The host's architecture in LXD's naming. */
export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "armv7l", ia32: "i686", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return map[process.arch] ?? process.arch;
}
