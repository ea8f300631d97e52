/**
 * Volume quotas with btrfs qgroups: each subvolume has its level-0 qgroup (0/<id>) once quotas
 * are on, and a limit on its referenced bytes is the volume's size, as LXD sets it. Referenced
 * counts blocks shared with the image or a snapshot too, so the limit is on what the volume
 * shows, not on what it alone costs.
 */
import { relative } from "node:path";
import { run } from "../../../sys/exec.js";

/** Turns quotas on for the filesystem holding `path` (a no-op when on), and waits for the scan. */
export async function enableQuotas(path: string): Promise<void> {
  const r = await run("btrfs", ["qgroup", "show", "-f", "--raw", path], { allowFail: true });
  if (r.code === 0) return;
  await run("btrfs", ["quota", "enable", path]);
  await run("btrfs", ["quota", "rescan", "-w", path], { allowFail: true }); // "already running" is fine
}

/** Sets (or with undefined lifts) the referenced-bytes limit of the subvolume at `path`. */
export async function limit(path: string, bytes: number | undefined): Promise<void> {
  await run("btrfs", ["qgroup", "limit", bytes === undefined ? "none" : String(bytes), path]);
}

/**
 * The subvolume's own qgroup: referenced bytes and its limit, or undefined when quotas are off
 * on the filesystem.
 */
export async function qgroupOf(path: string): Promise<{ referenced: number; limit: number | undefined } | undefined> {
  const r = await run("btrfs", ["qgroup", "show", "-re", "-f", "--raw", path], { allowFail: true });
  if (r.code !== 0) return undefined;
  for (const line of r.stdout.split("\n")) {
    // qgroupid rfer excl max_rfer max_excl [path]
    const f = line.trim().split(/\s+/);
    if (!/^0\/\d+$/.test(f[0] ?? "")) continue;
    return { referenced: Number(f[1]), limit: f[3] === "none" || f[3] === undefined ? undefined : Number(f[3]) };
  }
  return undefined;
}

/**
 * Referenced bytes of every subvolume of the filesystem mounted at `top` (its top-level
 * subvolume), by path relative to it, from one `btrfs qgroup show`; undefined when quotas are
 * off. What lists many volumes (instance state for `lxc list`) spawns one process per pool,
 * not one per volume.
 */
async function referencedByPath(top: string): Promise<Map<string, number> | undefined> {
  const r = await run("btrfs", ["qgroup", "show", "--raw", top], { allowFail: true });
  if (r.code !== 0) return undefined;
  const out = new Map<string, number>();
  for (const line of r.stdout.split("\n")) {
    // qgroupid rfer excl path (btrfs-progs ≥ 5.x print the path; "<stale>" ones have none)
    const m = /^0\/\d+\s+(\d+)\s+\d+\s+(\S.*)$/.exec(line.trim());
    if (m && !m[2]!.startsWith("<")) out.set(m[2]!, Number(m[1]));
  }
  return out;
}

/**
 * Volumes' referenced bytes, answered for a whole pool at once: on a pool that is a whole
 * filesystem, one `qgroup show` per second serves every volume (instance state for `lxc list`
 * spawns one process per pool, not one per instance). Other pools ask per volume.
 */
export class ReferencedBytes {
  private readonly pools = new Map<string, { at: number; all: Promise<Map<string, number> | undefined> }>();

  async of(poolRoot: string, volume: string, wholeFs: boolean): Promise<number | undefined> {
    if (wholeFs) {
      let cached = this.pools.get(poolRoot);
      if (!cached || Date.now() - cached.at > 1_000) this.pools.set(poolRoot, (cached = { at: Date.now(), all: referencedByPath(poolRoot) }));
      const all = await cached.all;
      if (!all) return undefined;
      const found = all.get(relative(poolRoot, volume));
      if (found !== undefined) return found;
    }
    return (await qgroupOf(volume))?.referenced;
  }

  /** Drops what is known of a pool (its quotas were just turned on). */
  forget(poolRoot: string): void {
    this.pools.delete(poolRoot);
  }
}
