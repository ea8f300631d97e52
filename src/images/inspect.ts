import { badRequest } from "../api/errors.js";
import { run } from "../sys/exec.js";
import { hasRootfsDir, hasRootfsImg, inspectSquashfs, inspectTarball } from "./archive.js";
import { detectFileFormat, splitRootfsType, type FileFormat, type ImageType } from "./format.js";
import { parseImageMetadata, type ImageMetadata } from "./metadata.js";

export interface ImageFiles {
  /** The unified tarball, or the metadata tarball of a split image. */
  metadata: string;
  /** The rootfs of a split image (tarball, SquashFS or qcow2). */
  rootfs?: string;
}

export interface InspectedImage {
  type: ImageType;
  metadata: ImageMetadata;
  metadataFormat: FileFormat;
  rootfsFormat?: FileFormat;
}

const METADATA_YAML = "metadata.yaml";

/**
 * Validates image files before they enter the store: formats, every archive member (the
 * unpack safety rule), metadata.yaml, and the image type. Reads each file once, end to end, so
 * truncated and corrupt files are refused here rather than when an instance is created.
 */
export async function inspectImage(files: ImageFiles, opts: { declaredType?: ImageType; signal?: AbortSignal } = {}): Promise<InspectedImage> {
  const split = files.rootfs !== undefined;
  const metaWhat = split ? "metadata tarball" : "image tarball";
  const metadataFormat = await detectFileFormat(files.metadata, metaWhat);
  if (metadataFormat.kind !== "tar")
    throw badRequest(
      split
        ? `Invalid image: the metadata file must be a tarball, got ${metadataFormat.ext.slice(1)}`
        : `Invalid image: a ${metadataFormat.ext.slice(1)} file is only valid as the rootfs of a split image; send the metadata tarball with it`,
    );
  const listing = await inspectTarball(files.metadata, metadataFormat.compression, {
    what: metaWhat,
    layout: "image",
    capture: [METADATA_YAML],
    signal: opts.signal,
  });
  const yaml = listing.captured.get(METADATA_YAML);
  if (!yaml) throw badRequest(`Invalid image: the ${metaWhat} is missing metadata.yaml`);
  const metadata = parseImageMetadata(yaml.toString("utf8"));

  if (!split) {
    let type: ImageType;
    if (hasRootfsImg(listing.members)) type = "virtual-machine";
    else if (hasRootfsDir(listing.members)) type = "container";
    else throw badRequest("Invalid image: the image tarball has neither a rootfs/ directory nor a rootfs.img disk");
    if (opts.declaredType && opts.declaredType !== type)
      throw badRequest(`Invalid image: declared as ${opts.declaredType} but the tarball holds a ${type} image`);
    return { type, metadata, metadataFormat };
  }

  const rootfs = files.rootfs!;
  const rootfsFormat = await detectFileFormat(rootfs, "rootfs");
  const type = splitRootfsType(rootfsFormat, opts.declaredType);
  if (rootfsFormat.kind === "squashfs") await inspectSquashfs(rootfs, "rootfs", opts.signal);
  else if (rootfsFormat.kind === "tar")
    await inspectTarball(rootfs, rootfsFormat.compression, { what: "rootfs tarball", layout: "rootfs", signal: opts.signal });
  else await checkQcow2(rootfs, opts.signal);
  return { type, metadata, metadataFormat, rootfsFormat };
}

async function checkQcow2(path: string, signal?: AbortSignal): Promise<void> {
  const r = await run("qemu-img", ["check", "-q", "-f", "qcow2", path], { allowFail: true, signal });
  // 0: clean; 3: leaked clusters only (harmless). Anything else is corruption or a bad header.
  if (r.code !== 0 && r.code !== 3) {
    const why = (r.stderr || r.stdout).trim().split("\n").slice(-1)[0] || `exit ${r.code}`;
    throw badRequest(`Invalid image: the rootfs.img is not a valid qcow2 disk (${why})`);
  }
}
