/**
 * Shifting a directory tree's ownership between id maps: the fallback for unprivileged
 * containers when the kernel or filesystem cannot do idmapped mounts. Every inode owned by a
 * host id that `from` maps (or, with `from` undefined, by an id as the image has it) is
 * re-owned to the host id that `to` gives the same id inside the container. Symlinks are
 * re-owned themselves (lchown), never followed; mount points below the root are not crossed.
 *
 * lchown clears set-uid/set-gid bits on regular files, so those mode bits are put back.
 * Not yet handled: POSIX ACLs and v3 file capabilities (security.capability xattrs with a
 * root id), which LXD also rewrites.
 */
import { chmod, lchown, lstat, opendir } from "node:fs/promises";
import path from "node:path";
import { toHost, toNs, type IdmapEntry } from "./idmap.js";

export interface ShiftResult {
  /** Inodes re-owned. */
  changed: number;
  /** Inodes left alone because their owner is outside `from`. */
  skipped: number;
}

/** How an id in the tree maps to the container's id: identity for an unshifted tree. */
function inside(from: readonly IdmapEntry[] | undefined, kind: "u" | "g", id: number): number | undefined {
  return from ? toNs(from, kind, id) : id;
}

function outside(to: readonly IdmapEntry[] | undefined, kind: "u" | "g", nsid: number): number | undefined {
  return to ? toHost(to, kind, nsid) : nsid;
}

/**
 * Re-owns `root` from map `from` to map `to` (undefined: unshifted, ids as in the image).
 * Walks depth-first with bounded parallelism; returns how many inodes changed.
 */
export async function shiftOwnership(
  root: string,
  from: readonly IdmapEntry[] | undefined,
  to: readonly IdmapEntry[] | undefined,
): Promise<ShiftResult> {
  const result: ShiftResult = { changed: 0, skipped: 0 };
  const rootDev = (await lstat(root)).dev;

  const one = async (p: string): Promise<boolean> => {
    const st = await lstat(p);
    if (st.dev !== rootDev) return false; // a mount point: not ours to shift
    const nsUid = inside(from, "u", st.uid);
    const nsGid = inside(from, "g", st.gid);
    const uid = nsUid === undefined ? undefined : outside(to, "u", nsUid);
    const gid = nsGid === undefined ? undefined : outside(to, "g", nsGid);
    if (uid === undefined || gid === undefined) {
      result.skipped++;
    } else if (uid !== st.uid || gid !== st.gid) {
      await lchown(p, uid, gid);
      if (st.isFile() && st.mode & 0o6000) await chmod(p, st.mode & 0o7777);
      result.changed++;
    }
    return st.isDirectory();
  };

  const walk = async (dir: string): Promise<void> => {
    if (!(await one(dir))) return;
    const subdirs: string[] = [];
    const files: string[] = [];
    for await (const e of await opendir(dir)) (e.isDirectory() ? subdirs : files).push(path.join(dir, e.name));
    for (let i = 0; i < files.length; i += 64) await Promise.all(files.slice(i, i + 64).map(one));
    for (const d of subdirs) await walk(d);
  };
  await walk(root);
  return result;
}
