import { chmod, link, mkdir, mkdtemp, readdir, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { deviceMembers, extractSquashfs, extractTarball, inspectSquashfs, inspectTarball } from "./archive.js";
import { detectFileFormat } from "./format.js";

/** Unpack directories in progress; removed at start-up if a crash left one behind. */
export const UNPACK_PREFIX = ".unpack-";

/**
 * Each image is unpacked once, into $LODGE_DIR/images/<fp>.unpacked, and every instance created
 * from it starts from that tree (a reflink, snapshot or idmapped copy, per storage driver).
 * The layout is LXD's unified one: metadata.yaml, templates/, and rootfs/ for a container or
 * rootfs.img for a VM. Unpacking happens in a scratch directory renamed into place when done,
 * so a half-unpacked tree is never visible; concurrent callers share one unpack.
 */
export class UnpackCache {
  private readonly running = new Map<string, Promise<string>>();

  constructor(private readonly imagesDir: string) {}

  path(fp: string): string {
    return join(this.imagesDir, `${fp}.unpacked`);
  }

  async has(fp: string): Promise<boolean> {
    return stat(this.path(fp)).then(
      () => true,
      () => false,
    );
  }

  /** The unpacked tree of an image in the store, unpacking it first if needed. */
  ensure(fp: string, signal?: AbortSignal): Promise<string> {
    const pending = this.running.get(fp);
    if (pending) return pending;
    const p = this.unpack(fp, signal).finally(() => this.running.delete(fp));
    this.running.set(fp, p);
    return p;
  }

  private async unpack(fp: string, signal?: AbortSignal): Promise<string> {
    const dest = this.path(fp);
    if (await this.has(fp)) return dest;
    const metaFile = join(this.imagesDir, fp);
    const rootfsFile = `${metaFile}.rootfs`;
    const split = await stat(rootfsFile).then(
      () => true,
      () => false,
    );
    const scratch = await mkdtemp(join(this.imagesDir, `${UNPACK_PREFIX}${fp.slice(0, 12)}-`));
    try {
      await chmod(scratch, 0o700);
      // The files were checked at import; checking again costs a read and guards against a
      // store written by an older, laxer Lodge.
      const meta = await detectFileFormat(metaFile, split ? "metadata tarball" : "image tarball");
      if (meta.kind !== "tar") throw new Error(`image ${fp}: metadata file is not a tarball`);
      const listing = await inspectTarball(metaFile, meta.compression, { what: "image tarball", layout: "image", signal });
      await extractTarball(metaFile, scratch, { exclude: deviceMembers(listing.members), signal });

      if (split) {
        // The rootfs comes from its own file only: a rootfs/ in the metadata tarball (checked
        // on its own) could hold a symlink that the rootfs tarball would then be written through.
        await rm(join(scratch, "rootfs"), { recursive: true, force: true });
        const rootfs = await detectFileFormat(rootfsFile, "rootfs");
        if (rootfs.kind === "squashfs") {
          await inspectSquashfs(rootfsFile, "rootfs", signal);
          await extractSquashfs(rootfsFile, join(scratch, "rootfs"), signal);
        } else if (rootfs.kind === "tar") {
          const rootfsListing = await inspectTarball(rootfsFile, rootfs.compression, { what: "rootfs tarball", layout: "rootfs", signal });
          await mkdir(join(scratch, "rootfs"));
          await extractTarball(rootfsFile, join(scratch, "rootfs"), { exclude: deviceMembers(rootfsListing.members), signal });
        } else {
          // A VM disk is used as is; a hard link costs nothing and survives the image's deletion
          // only as long as the cache does.
          await link(rootfsFile, join(scratch, "rootfs.img"));
        }
      }
      // unsquashfs has no literal exclusion (its patterns are globs), so it creates the image's
      // device nodes; they go here, while the tree is still private (0700, root, unnamed). For
      // tarballs this is a second line behind the exclusion list.
      await dropDeviceNodes(scratch);
      await rename(scratch, dest);
      return dest;
    } catch (e) {
      await rm(scratch, { recursive: true, force: true });
      throw e;
    }
  }

  async remove(fp: string): Promise<void> {
    await rm(this.path(fp), { recursive: true, force: true });
  }
}

/**
 * Removes every character and block device under dir (an instance gets its own /dev from
 * liblxc, and an image's device node, e.g. a 0666 loop device, would give its users the host's
 * disk). Links are not followed: directory entries are judged by their own type.
 */
export async function dropDeviceNodes(dir: string): Promise<void> {
  const pending = [dir];
  for (let d = pending.pop(); d !== undefined; d = pending.pop()) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isCharacterDevice() || e.isBlockDevice()) await unlink(p);
      else if (e.isDirectory()) pending.push(p);
    }
  }
}
