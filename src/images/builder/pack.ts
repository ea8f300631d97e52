/**
 * LXD's image formats, written from a build directory holding `metadata.yaml`, `templates/`
 * and `rootfs/`:
 * - unified: one tarball with all three (the fingerprint is the tarball's SHA-256);
 * - split: a metadata tarball (metadata.yaml, templates/) and a SquashFS of the rootfs (the
 *   fingerprint is the SHA-256 of the metadata file's bytes followed by the rootfs file's).
 * Ownership is kept numerically, with modes, device nodes, ACLs and extended attributes (file
 * capabilities such as ping's live in security.capability).
 */
import { access, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { stringify as toYaml } from "yaml";
import { fingerprintFiles } from "../fingerprint.js";
import { runStreaming, type ProgressFn } from "./command.js";
import type { TemplateSpec, TemplateTrigger } from "./definition.js";

export type Compression = "xz" | "gzip";

/** An entry of metadata.yaml's `templates`, as LXD reads it. */
export interface MetadataTemplate {
  when: TemplateTrigger[];
  template: string;
  create_only?: boolean;
  properties?: Record<string, string>;
}

/** metadata.yaml, as LXD reads it: architecture and creation_date are mandatory. */
export interface ImageMetadata {
  architecture: string;
  creation_date: number;
  expiry_date: number;
  properties: {
    os: string;
    release: string;
    architecture: string;
    description: string;
    variant: string;
    serial: string;
    /** A VM image's: type, and lodge.kernel / lodge.initrd / lodge.cmdline for direct boot. */
    [key: string]: string;
  };
  templates?: Record<string, MetadataTemplate>;
}

/** File name suffixes per compression, as `lxc image export` names them. */
export const TAR_SUFFIX: Record<Compression, string> = { xz: ".tar.xz", gzip: ".tar.gz" };

/**
 * Writes metadata.yaml and templates/ into dir. Template files are named after the file they
 * render (hostname.tpl), or after its full path when two share a name (etc-foo-hostname.tpl).
 */
export async function writeMetadata(
  dir: string,
  meta: Omit<ImageMetadata, "templates">,
  templates: Record<string, TemplateSpec>,
): Promise<ImageMetadata> {
  const out: ImageMetadata = { ...meta };
  const entries = Object.entries(templates);
  if (entries.length) {
    out.templates = {};
    await mkdir(path.join(dir, "templates"), { recursive: true });
    const taken = new Set<string>();
    for (const [target, spec] of entries) {
      let name = spec.template ?? `${path.posix.basename(target)}.tpl`;
      if (taken.has(name)) name = `${target.replace(/^\/+/, "").replace(/\//g, "-")}.tpl`;
      for (let i = 2; taken.has(name); i++) name = `${target.replace(/^\/+/, "").replace(/\//g, "-")}-${i}.tpl`;
      taken.add(name);
      await writeFile(path.join(dir, "templates", name), spec.content);
      const entry: MetadataTemplate = { when: spec.when, template: name };
      if (spec.create_only !== undefined) entry.create_only = spec.create_only;
      if (spec.properties) entry.properties = spec.properties;
      out.templates[target] = entry;
    }
  }
  await writeFile(path.join(dir, "metadata.yaml"), toYaml(out));
  return out;
}

const TAR_KEEP = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sort=name"];

function compressor(c: Compression): string {
  return c === "xz" ? "xz -T0 -6" : "gzip -6";
}

/** Writes a unified image tarball to `out` from dir's metadata.yaml, templates/ and rootfs/. */
export async function packUnified(dir: string, out: string, compression: Compression, onProgress?: ProgressFn): Promise<void> {
  onProgress?.(`packing unified image (tar + ${compression})`);
  const members = ["metadata.yaml", ...((await exists(path.join(dir, "templates"))) ? ["templates"] : []), "rootfs"];
  await runStreaming("tar", ["--create", `--file=${out}`, ...TAR_KEEP, `--use-compress-program=${compressor(compression)}`, "-C", dir, ...members], {
    onLine: onProgress,
  });
}

/** Writes a split image: the metadata tarball to `metaOut`, the rootfs as SquashFS to `rootfsOut`. */
export async function packSplit(dir: string, metaOut: string, rootfsOut: string, compression: Compression, onProgress?: ProgressFn): Promise<void> {
  onProgress?.(`packing metadata tarball (tar + ${compression})`);
  const members = ["metadata.yaml", ...((await exists(path.join(dir, "templates"))) ? ["templates"] : [])];
  await runStreaming("tar", ["--create", `--file=${metaOut}`, ...TAR_KEEP, `--use-compress-program=${compressor(compression)}`, "-C", dir, ...members]);
  onProgress?.(`packing rootfs.squashfs (mksquashfs + ${compression})`);
  await runStreaming("mksquashfs", [path.join(dir, "rootfs"), rootfsOut, "-noappend", "-comp", compression, "-xattrs", "-no-progress", "-quiet"], {
    onLine: onProgress,
  });
}

/** Where a VM image's metadata tarball holds its kernel and initrd, as its properties name them. */
export const VM_BOOT_FILES = { "lodge.kernel": "boot/vmlinuz", "lodge.initrd": "boot/initrd.img" } as const;

/**
 * A VM image: the metadata tarball (metadata.yaml, templates/, boot/) alone for a split image
 * (its rootfs.img is already written beside it), or with rootfs.img inside for a unified one.
 */
export async function packVm(dir: string, out: string, unified: boolean, compression: Compression, onProgress?: ProgressFn): Promise<void> {
  onProgress?.(`packing ${unified ? "unified VM image" : "metadata tarball"} (tar + ${compression})`);
  const members = ["metadata.yaml", ...((await exists(path.join(dir, "templates"))) ? ["templates"] : []), "boot", ...(unified ? ["rootfs.img"] : [])];
  await runStreaming("tar", ["--create", `--file=${out}`, ...TAR_KEEP, `--use-compress-program=${compressor(compression)}`, "-C", dir, ...members]);
}

/**
 * The image fingerprint as LXD computes it: SHA-256 over the bytes of each file in turn (one
 * file for a unified image; metadata then rootfs for a split one).
 */
export function imageFingerprint(files: readonly string[]): Promise<string> {
  return fingerprintFiles(files);
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
