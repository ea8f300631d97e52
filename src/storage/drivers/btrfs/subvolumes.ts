/**
 * Subvolume work with btrfs-progs: create, snapshot and delete, each aware of nested
 * subvolumes (systemd makes /var/lib/machines and friends as subvolumes inside a container's
 * rootfs). A snapshot of a subvolume holds an empty placeholder directory where a nested one
 * was; like LXD, copies and snapshots put a snapshot of each nested subvolume in its place.
 * btrfs-progs 6.2 (Debian 12) has no `subvolume delete -R`, so nested ones are deleted here,
 * deepest first.
 */
import { rmdir } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../../sys/exec.js";

/** A subvolume as `btrfs subvolume list` prints it (path relative to the filesystem's top). */
interface Subvolume {
  id: number;
  parent: number;
  path: string;
}

function parseList(out: string): Subvolume[] {
  const subs: Subvolume[] = [];
  for (const line of out.split("\n")) {
    const m = /^ID (\d+) gen \d+ top level (\d+) path (.*)$/.exec(line.trim());
    if (m) subs.push({ id: Number(m[1]), parent: Number(m[2]), path: m[3]! });
  }
  return subs;
}

/**
 * The subvolumes nested anywhere below the subvolume at `path`, as paths relative to it,
 * parents before their children. One `btrfs subvolume list -o` answers the common case (none).
 */
export async function nestedSubvolumes(path: string): Promise<string[]> {
  const direct = parseList((await run("btrfs", ["subvolume", "list", "-o", path])).stdout);
  if (!direct.length) return [];
  const [all, id] = await Promise.all([
    run("btrfs", ["subvolume", "list", path]).then((r) => parseList(r.stdout)),
    run("btrfs", ["inspect-internal", "rootid", path]).then((r) => Number(r.stdout.trim())),
  ]);
  const self = all.find((s) => s.id === id);
  // The top-level subvolume (id 5) is not listed; its children's paths are already relative.
  const prefix = self ? `${self.path}/` : "";
  const out: string[] = [];
  const walk = (parent: number) => {
    for (const s of all.filter((x) => x.parent === parent).sort((a, b) => a.path.localeCompare(b.path))) {
      out.push(s.path.startsWith(prefix) ? s.path.slice(prefix.length) : s.path);
      walk(s.id);
    }
  };
  walk(id);
  return out;
}

export async function createSubvolume(path: string): Promise<void> {
  await run("btrfs", ["subvolume", "create", path]);
}

export async function setReadonly(path: string, readonly: boolean): Promise<void> {
  await run("btrfs", ["property", "set", "-ts", path, "ro", String(readonly)]);
}

/**
 * Snapshots `src` to `dest` with its nested subvolumes, read-only or writable. Atomic when
 * there are none (one ioctl); otherwise the caller snapshots to a scratch name and renames.
 * A failure deletes what was made. `flat` says that `src` holds no nested subvolume.
 */
export async function snapshotTree(src: string, dest: string, opts: { readonly: boolean; signal?: AbortSignal; flat?: boolean }): Promise<void> {
  opts.signal?.throwIfAborted();
  // `flat`: the caller knows there is nothing nested (an image volume), which saves a
  // process on an instance create's hot path.
  const nested = opts.flat ? [] : await nestedSubvolumes(src);
  if (!nested.length) {
    await run("btrfs", ["subvolume", "snapshot", ...(opts.readonly ? ["-r"] : []), src, dest]);
    return;
  }
  await run("btrfs", ["subvolume", "snapshot", src, dest]);
  try {
    for (const rel of nested) {
      opts.signal?.throwIfAborted();
      await rmdir(join(dest, rel)); // the empty placeholder the outer snapshot holds
      await run("btrfs", ["subvolume", "snapshot", join(src, rel), join(dest, rel)]);
    }
    if (opts.readonly) {
      // Children first: a read-only parent would refuse nothing here, but keep the order tidy.
      for (const rel of [...nested].reverse()) await setReadonly(join(dest, rel), true);
      await setReadonly(dest, true);
    }
  } catch (e) {
    await deleteTree(dest).catch(() => {});
    throw e;
  }
}

/**
 * Deletes the subvolume at `path` and every subvolume nested in it (read-only ones too:
 * removing a child's entry from a read-only parent needs the parent made writable first).
 */
export async function deleteTree(path: string): Promise<void> {
  const nested = await nestedSubvolumes(path);
  if (nested.length) {
    for (const p of [path, ...nested.map((rel) => join(path, rel))]) await setReadonly(p, false);
    for (const rel of [...nested].reverse()) await run("btrfs", ["subvolume", "delete", join(path, rel)]);
  }
  await run("btrfs", ["subvolume", "delete", path]);
}

/** Whether `path` is a subvolume's root (inode 256; 2 is a nested one's empty placeholder). */
export function isSubvolumeRoot(ino: number): boolean {
  return ino === 256;
}
