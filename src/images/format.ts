import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { badRequest } from "../api/errors.js";

/**
 * What an image file is, from its first bytes (the same magic numbers LXD's
 * DetectCompressionFile uses): a tarball (plain or compressed), a SquashFS or a qcow2 disk.
 */
export type FileFormat =
  | { kind: "tar"; compression: Compression; ext: string }
  | { kind: "squashfs"; ext: ".squashfs" }
  | { kind: "qcow2"; ext: ".qcow2" };

export type Compression = "none" | "gzip" | "xz" | "lzma" | "bzip2" | "zstd";

/** Bytes needed to recognise every format (the ustar magic sits at offset 257). */
export const SNIFF_BYTES = 263;

const TAR_EXT: Record<Compression, string> = {
  none: ".tar",
  gzip: ".tar.gz",
  xz: ".tar.xz",
  lzma: ".tar.lzma",
  bzip2: ".tar.bz2",
  zstd: ".tar.zst",
};

/** Detects the format from a file's head; undefined when it is none of the known ones. */
export function detectFormat(head: Uint8Array): FileFormat | undefined {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const at = (off: number, bytes: number[] | string) => {
    const want = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Buffer.from(bytes);
    return b.length >= off + want.length && b.subarray(off, off + want.length).equals(want);
  };
  const tar = (c: Compression): FileFormat => ({ kind: "tar", compression: c, ext: TAR_EXT[c] });
  if (at(0, "BZh")) return tar("bzip2");
  if (at(0, [0x1f, 0x8b])) return tar("gzip");
  if (at(0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return tar("xz");
  if (at(0, [0x28, 0xb5, 0x2f, 0xfd])) return tar("zstd");
  if (at(0, [0x5d, 0x00, 0x00])) return tar("lzma");
  if (at(257, "ustar")) return tar("none");
  if (at(0, "hsqs")) return { kind: "squashfs", ext: ".squashfs" };
  if (at(0, [0x51, 0x46, 0x49, 0xfb])) return { kind: "qcow2", ext: ".qcow2" };
  return undefined;
}

/** Reads a file's head and detects its format; `what` names the file in the error. */
export async function detectFileFormat(path: string, what: string): Promise<FileFormat> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(head, 0, SNIFF_BYTES, 0);
    if (bytesRead === 0) throw badRequest(`Invalid image: the ${what} is empty`);
    const f = detectFormat(head.subarray(0, bytesRead));
    if (!f)
      throw badRequest(
        `Invalid image: the ${what} is not a tarball (plain, gzip, xz, lzma, bzip2, zstd), SquashFS or qcow2 file`,
      );
    return f;
  } finally {
    await fh.close();
  }
}

export type ImageType = "container" | "virtual-machine";

/**
 * Checks that a split image's rootfs fits the declared type (LXD's rule: a container rootfs is
 * a tarball or SquashFS, a VM's rootfs.img a qcow2 disk) and returns the type.
 */
export function splitRootfsType(rootfs: FileFormat, declared?: ImageType): ImageType {
  const actual: ImageType = rootfs.kind === "qcow2" ? "virtual-machine" : "container";
  if (declared && declared !== actual)
    throw badRequest(
      declared === "virtual-machine"
        ? `Invalid image: a virtual-machine rootfs.img must be a qcow2 disk, got ${rootfs.ext.slice(1)}`
        : "Invalid image: a container rootfs must be a tarball or SquashFS, got a qcow2 disk (send it as rootfs.img)",
    );
  return actual;
}

/** pigz (parallel gzip, the same format) where it is installed: gzip's work on every core. */
export function gzipTool(): string {
  return (hasPigz ??= ["/usr/bin/pigz", "/bin/pigz", "/usr/local/bin/pigz"].some((p) => existsSync(p))) ? "pigz" : "gzip";
}
let hasPigz: boolean | undefined;

/** The filter that decompresses a tarball to plain tar on stdout, or undefined for plain tar. */
export function decompressor(c: Compression): [string, string[]] | undefined {
  switch (c) {
    case "none":
      return undefined;
    case "gzip":
      return [gzipTool(), ["-dc"]];
    case "xz":
      return ["xz", ["-dc"]];
    case "lzma":
      return ["xz", ["--format=lzma", "-dc"]];
    case "bzip2":
      return ["bzip2", ["-dc"]];
    case "zstd":
      return ["zstd", ["-dcq"]];
  }
}

/** The filter that compresses plain tar from stdin to stdout, or undefined for plain tar. */
export function compressor(c: Compression): [string, string[]] | undefined {
  switch (c) {
    case "none":
      return undefined;
    case "gzip":
      return [gzipTool(), ["-c", "-n"]];
    case "xz":
      return ["xz", ["-c", "-T0"]];
    case "lzma":
      return ["xz", ["--format=lzma", "-c"]];
    case "bzip2":
      return ["bzip2", ["-c"]];
    case "zstd":
      return ["zstd", ["-c", "-q", "-T0"]];
  }
}

/** A compression_algorithm as LXD's API takes it ("gzip", "zstd", "none", …), checked. */
export function parseCompression(value: string | undefined, fallback: Compression): Compression {
  if (value === undefined || value === "") return fallback;
  if (value in TAR_EXT) return value as Compression;
  throw badRequest(`Unsupported compression algorithm "${value}": use one of ${Object.keys(TAR_EXT).join(", ")}`);
}
