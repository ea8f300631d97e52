import type { IncomingHttpHeaders } from "node:http";
import { badRequest } from "../api/errors.js";
import type { ImageType } from "./format.js";
import { MultipartReader, multipartBoundary } from "./multipart.js";
import type { ProgressCallback } from "./progress.js";
import type { ImageStaging } from "./staging.js";
import type { CommitOptions } from "./import-record.js";

/**
 * LXD's image upload protocol (POST /1.0/images with a non-JSON body), as `lxc image import`
 * 5.0.2 speaks it: a unified tarball is the raw body (application/octet-stream); a split image
 * is multipart/form-data with a "metadata" part, then a "rootfs" part (container: tarball or
 * SquashFS) or "rootfs.img" part (VM: qcow2). Headers: X-LXD-public, X-LXD-filename,
 * X-LXD-properties (URL-encoded, merged over metadata.yaml's), X-LXD-profiles
 * ("profile=a&profile=b"), X-LXD-fingerprint (verified when present).
 */
export function uploadOptions(headers: IncomingHttpHeaders): Omit<CommitOptions, "project"> {
  const h = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v : v === undefined ? [] : [v];
  };
  const properties: Record<string, string> = {};
  for (const raw of h("x-lxd-properties"))
    for (const [k, v] of new URLSearchParams(raw)) if (!(k in properties)) properties[k] = v;
  const profiles = h("x-lxd-profiles").flatMap((raw) => new URLSearchParams(raw).getAll("profile"));
  const pub = h("x-lxd-public")[0];
  return {
    public: pub !== undefined && ["1", "true", "yes", "on"].includes(pub.toLowerCase()),
    filename: h("x-lxd-filename")[0],
    properties,
    profiles: profiles.length ? profiles : undefined,
    expectedFingerprint: h("x-lxd-fingerprint")[0] || undefined,
  };
}

export interface ReceivedUpload {
  /** The type a split upload declared by its part name. */
  type?: ImageType;
  /** A split upload's file name is its rootfs part's (as LXD records it). */
  filename?: string;
}

/** Streams an upload body into the staging area, part by part. */
export async function receiveUpload(
  staging: ImageStaging,
  body: AsyncIterable<Buffer>,
  contentType: string | undefined,
  opts: { onProgress?: ProgressCallback; signal?: AbortSignal; contentLength?: number },
): Promise<ReceivedUpload> {
  const boundary = multipartBoundary(contentType);
  if (!boundary) {
    await staging.receive("metadata", body, { label: "image", total: opts.contentLength, ...opts });
    return {};
  }
  const parts = new MultipartReader(body, boundary);
  const meta = await parts.next();
  if (!meta || meta.name !== "metadata")
    throw badRequest(`Invalid multipart image: the first part must be "metadata", got ${meta ? `"${meta.name}"` : "nothing"}`);
  await staging.receive("metadata", meta.data, opts);
  const rootfs = await parts.next();
  if (!rootfs) throw badRequest('Invalid multipart image: the "rootfs" (or "rootfs.img") part is missing');
  if (rootfs.name !== "rootfs" && rootfs.name !== "rootfs.img")
    throw badRequest(`Invalid multipart image: the second part must be "rootfs" or "rootfs.img", got "${rootfs.name}"`);
  await staging.receive("rootfs", rootfs.data, opts);
  const extra = await parts.next();
  if (extra) throw badRequest(`Invalid multipart image: unexpected part "${extra.name}"`);
  return { type: rootfs.name === "rootfs.img" ? "virtual-machine" : "container", filename: rootfs.filename || undefined };
}
