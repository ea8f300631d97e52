import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { badRequest } from "../api/errors.js";

/**
 * An image's fingerprint is the SHA-256 of what the client uploads (LXD, doc/image-handling.md
 * and getImgPostInfo): of the tarball for a unified image, and of the metadata file's bytes
 * followed by the rootfs file's bytes for a split image.
 */
export function newFingerprintHash(): Hash {
  return createHash("sha256");
}

/** The fingerprint of files as stored: the SHA-256 of their concatenation, in order. */
export async function fingerprintFiles(paths: readonly string[]): Promise<string> {
  const h = newFingerprintHash();
  for (const p of paths) for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** The fingerprint of in-memory parts (metadata, then rootfs). */
export function fingerprintOf(...parts: Uint8Array[]): string {
  const h = newFingerprintHash();
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** Checks a fingerprint the client announced (X-LXD-fingerprint) against the computed one. */
export function checkExpectedFingerprint(actual: string, expected: string | undefined): void {
  if (!expected) return;
  if (actual !== expected.toLowerCase())
    throw badRequest(`Image fingerprint mismatch: the data hashes to ${actual}, but ${expected} was announced`);
}

/** A full fingerprint is 64 lowercase hex digits. */
export const isFingerprint = (s: string) => /^[0-9a-f]{64}$/.test(s);

/** A lookup key that can be a fingerprint prefix: 1 to 64 hex digits. */
export const isFingerprintPrefix = (s: string) => /^[0-9a-fA-F]{1,64}$/.test(s);
