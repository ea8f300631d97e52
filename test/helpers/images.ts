import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { runCommand, unmountPools } from "./daemon.js";

export const DEFAULT_METADATA = `architecture: x86_64
creation_date: 1700000000
properties:
  os: busybox
  release: "1.35"
  description: Busybox test image
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
`;

export interface BuiltImages {
  dir: string;
  /** rootfs/ + metadata.yaml + templates/ in one gzip tarball. */
  unified: string;
  /** metadata.yaml + templates/ only. */
  metadata: string;
  /** The rootfs as SquashFS. */
  squashfs: string;
  unifiedFingerprint: string;
  splitFingerprint: string;
}

/** A scratch directory removed when the test ends. */
export async function scratchDir(t: TestContext, prefix = "lodge-img-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // Mounts made below it (a dir pool's layered volumes, a loop-backed pool) go first.
  t.after(async () => {
    await unmountPools(dir);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A tiny busybox rootfs (static busybox and a few links), built in milliseconds. */
export async function buildRootfs(dir: string): Promise<string> {
  const rootfs = join(dir, "rootfs");
  for (const d of ["bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root"]) await mkdir(join(rootfs, d), { recursive: true });
  await copyFile("/bin/busybox", join(rootfs, "bin/busybox"));
  for (const app of ["sh", "ls", "cat", "echo", "mount", "sleep"]) await symlink("busybox", join(rootfs, "bin", app));
  await symlink("../bin/busybox", join(rootfs, "sbin/init"));
  await writeFile(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  await writeFile(join(rootfs, "etc/group"), "root:x:0:\n");
  return rootfs;
}

/** Writes metadata.yaml and templates/ into dir. */
export async function writeMetadata(dir: string, metadata = DEFAULT_METADATA): Promise<void> {
  await writeFile(join(dir, "metadata.yaml"), metadata);
  await mkdir(join(dir, "templates"), { recursive: true });
  await writeFile(join(dir, "templates/hostname.tpl"), "{{ instance.name }}\n");
}

/** Builds a unified tarball and a split (metadata tarball + SquashFS rootfs) image of busybox. */
export async function buildBusyboxImages(t: TestContext, metadata = DEFAULT_METADATA): Promise<BuiltImages> {
  const dir = await scratchDir(t);
  const src = join(dir, "src");
  await mkdir(src);
  const rootfs = await buildRootfs(src);
  await writeMetadata(src, metadata);
  const unified = join(dir, "busybox.tar.gz");
  await tar(src, unified, ["metadata.yaml", "templates", "rootfs"]);
  const meta = join(dir, "busybox-meta.tar.xz");
  await tar(src, meta, ["metadata.yaml", "templates"], "--xz");
  const squashfs = join(dir, "busybox.squashfs");
  await runCommand("mksquashfs", [rootfs, squashfs, "-noappend", "-quiet", "-comp", "gzip", "-all-root"]);
  return {
    dir,
    unified,
    metadata: meta,
    squashfs,
    unifiedFingerprint: await sha256Files(unified),
    splitFingerprint: await sha256Files(meta, squashfs),
  };
}

/** Creates a tarball of `members` (relative to cwd) with GNU tar. */
export async function tar(cwd: string, out: string, members: string[], compress = "--gzip"): Promise<void> {
  const args = ["--create", "--file", out, "--directory", cwd, "--numeric-owner", "--owner=0", "--group=0"];
  if (compress) args.push(compress);
  await runCommand("tar", [...args, ...members]);
}

export async function sha256Files(...paths: string[]): Promise<string> {
  const h = createHash("sha256");
  for (const p of paths) h.update(await readFile(p));
  return h.digest("hex");
}
