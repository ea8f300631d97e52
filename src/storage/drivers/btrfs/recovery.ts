/**
 * Work in progress goes under scratch names beside its target, `.<name>.<kind>` (dir.ts
 * scratchPath: no real name starts with a dot).
 *
 * What a crash (kill -9 of lodged, a host reset) can leave in a pool, and how a start puts
 * each back, so every volume and snapshot is whole or absent:
 * - `.<x>.creating`, `.<x>.receiving`, `.<x>.sending-*`: a create, copy, snapshot, import or
 *   export cut short; removed (the real name was never taken).
 * - a restore cut short: `.<x>.restoring` (the snapshot's copy, whole once it exists under
 *   that name) and `.<x>.old` (the volume before). Before the swap, `<x>` is still there and
 *   the copy goes; between the two renames `<x>` is missing and the copy is put in its place;
 *   after them only `.<x>.old` is left, and goes.
 */
import { lstat, readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { scratchPath } from "../dir.js";

export { scratchPath };

const exists = (p: string) => lstat(p).then(() => true, () => false);

/**
 * Puts back what interrupted work left in `dirs` (a pool's type directories and the
 * per-volume snapshot directories below its snapshot ones); `remove` deletes a volume
 * directory (subvolumes included). Returns the names it acted on. Only for a pool nothing
 * works on yet (at daemon start): it cannot tell a crash's leftovers from work in progress.
 */
export async function recoverInterrupted(dirs: string[], remove: (path: string) => Promise<void>): Promise<string[]> {
  const acted: string[] = [];
  for (const dir of dirs) {
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith("."));
    // Restores first: the copy of one cut short between its renames is put in place before
    // its old volume is judged.
    for (const name of names) {
      const m = /^\.(.+)\.(creating|receiving|sending-[0-9a-f]+|restoring)$/.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      const target = join(dir, m[1]!);
      if (m[2] === "restoring" && !(await exists(target))) await rename(path, target);
      else await remove(path);
      acted.push(path);
    }
    for (const name of names) {
      const m = /^\.(.+)\.old$/.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      const target = join(dir, m[1]!);
      // The volume is in place (its restored copy): the old content goes. Without it (not a
      // state the driver's order makes), the old content is the volume.
      if (await exists(target)) await remove(path);
      else await rename(path, target);
      acted.push(path);
    }
  }
  return acted;
}
