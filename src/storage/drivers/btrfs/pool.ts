/**
 * Where a btrfs pool's filesystem comes from and how it is mounted, as LXD does it: `source`
 * empty → a loop file the driver makes (<LODGE_DIR>/disks/<pool>.img, sparse, `size` long);
 * a block device → that device (formatted only when it holds no filesystem); a directory on
 * btrfs (an existing subvolume or mount) → bind-mounted. Whatever the source, the pool is
 * reachable at <LODGE_DIR>/storage-pools/<pool>.
 */
import { chmod, lstat, mkdir, readdir, readFile, realpath, rm, statfs, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parseSize } from "../../../config/keys.js";
import { run } from "../../../sys/exec.js";
import { createSubvolume } from "./subvolumes.js";

export const BTRFS_MAGIC = 0x9123683e;
const GiB = 1024 ** 3;

export type PoolSource = { kind: "loop"; file: string; ours: boolean } | { kind: "device"; device: string } | { kind: "directory"; path: string };

/** What a pool's `source` names; `ownLoopFile` is where the driver's own loop file goes. */
export async function classifySource(source: string | undefined, ownLoopFile: string): Promise<PoolSource> {
  if (!source || source === ownLoopFile) return { kind: "loop", file: ownLoopFile, ours: true };
  const st = await lstat(source).catch(() => undefined);
  if (st?.isBlockDevice()) return { kind: "device", device: source };
  if (st?.isFile()) return { kind: "loop", file: source, ours: false };
  if (st && !st.isDirectory()) throw new Error(`source "${source}" is neither a block device, a file nor a directory`);
  return { kind: "directory", path: source };
}

/** LXD's default loop size: 20% of the free space where the file goes, at least 5GiB, at most 30GiB. */
export async function defaultLoopSize(dir: string): Promise<string> {
  const s = await statfs(dir);
  const gib = Math.floor((s.bavail * s.bsize) / 5 / GiB);
  return `${Math.min(30, Math.max(5, gib))}GiB`;
}

/** A byte count as LXD writes sizes: "30GiB", "300MiB", else bytes. */
function sizeText(bytes: number): string {
  if (bytes % GiB === 0) return `${bytes / GiB}GiB`;
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}MiB`;
  return `${bytes}B`;
}

/** The filesystem type blkid sees on a device or image file, or undefined. */
async function fsType(path: string): Promise<string | undefined> {
  const r = await run("blkid", ["-p", "-o", "value", "-s", "TYPE", path], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() || undefined : undefined;
}

/**
 * Makes the filesystem the source needs (a no-op when it is already btrfs: createPool is
 * idempotent). Returns the config keys it settled (source and size of a loop file).
 */
export async function prepareSource(src: PoolSource, config: Record<string, string>): Promise<Record<string, string>> {
  if (config.size && !(src.kind === "loop" && src.ours)) throw new Error(`"size" applies only to a loop file the driver makes (an empty "source")`);
  switch (src.kind) {
    case "loop": {
      if (!src.ours) {
        if ((await fsType(src.file)) !== "btrfs") throw new Error(`source "${src.file}" is a file that holds no btrfs filesystem`);
        return { source: src.file };
      }
      const exists = await lstat(src.file).catch(() => undefined);
      if (exists && (await fsType(src.file)) === "btrfs") return { source: src.file, size: config.size || sizeText(exists.size) };
      // The image holds every volume's files, set-uid ones and container secrets included:
      // root's alone, like the volumes themselves.
      await mkdir(dirname(src.file), { recursive: true, mode: 0o700 });
      await chmod(dirname(src.file), 0o700);
      const size = config.size || (await defaultLoopSize(dirname(src.file)));
      const bytes = parseSize(size);
      try {
        await writeFile(src.file, "", { mode: 0o600, flag: "wx" });
        await run("truncate", ["-s", String(bytes), src.file]);
        await run("mkfs.btrfs", ["-q", src.file]);
      } catch (e) {
        await rm(src.file, { force: true });
        throw e;
      }
      return { source: src.file, size };
    }
    case "device": {
      const type = await fsType(src.device);
      if (type === "btrfs") return { source: src.device };
      if (type) throw new Error(`source "${src.device}" already holds a ${type} filesystem; wipe it first to use it for a btrfs pool`);
      await run("mkfs.btrfs", ["-q", src.device]);
      return { source: src.device };
    }
    case "directory": {
      const st = await lstat(src.path).catch(() => undefined);
      const fs = await statfs(st ? src.path : dirname(src.path)).catch(() => undefined);
      if (!fs || Number(fs.type) !== BTRFS_MAGIC) throw new Error(`source "${src.path}" is not on a btrfs filesystem`);
      if (!st) await createSubvolume(src.path);
      return { source: src.path };
    }
  }
}

/** Whether something is mounted at `path` (read from /proc/self/mountinfo; no process spawned). */
export async function isMountPoint(path: string): Promise<boolean> {
  // mountinfo shows resolved paths: a LODGE_DIR under a symlink must not look unmounted (and
  // be mounted again at every start).
  path = await realpath(path).catch(() => path);
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split("\n").some((line) => {
    const f = line.split(" ");
    return f[4] !== undefined && unescape(f[4]) === path;
  });
}

/** Mounts the source at `at` unless something is mounted there already (after a reboot it is not). */
export async function mountSource(src: PoolSource, at: string, mountOptions: string): Promise<void> {
  await mkdir(at, { recursive: true, mode: 0o711 });
  if (await isMountPoint(at)) return;
  const opts = mountOptions.trim();
  switch (src.kind) {
    case "loop":
      await run("mount", ["-t", "btrfs", "-o", ["loop", opts].filter(Boolean).join(","), src.file, at]);
      return;
    case "device":
      await run("mount", ["-t", "btrfs", ...(opts ? ["-o", opts] : []), src.device, at]);
      return;
    case "directory":
      await run("mount", ["--bind", src.path, at]);
      return;
  }
}

/** Unmounts `at` (if mounted) and detaches the loop devices still bound to a loop source. */
export async function unmountSource(src: PoolSource, at: string): Promise<void> {
  if (await isMountPoint(at)) await run("umount", [at]);
  if (src.kind !== "loop") return;
  // mount -o loop sets autoclear, so the device goes with the umount, but the kernel lets go
  // of it a moment later (asynchronously); one that a crash or a manual losetup left is
  // detached here. Returns once none is bound to the file (or after about 3 seconds).
  for (let i = 0; i < 100; i++) {
    const r = await run("losetup", ["-j", src.file], { allowFail: true });
    const devs = r.stdout.split("\n").flatMap((line) => /^(\/dev\/loop\d+):/.exec(line)?.[1] ?? []);
    if (!devs.length) return;
    if (i % 10 === 0) for (const dev of devs) await run("losetup", ["-d", dev], { allowFail: true });
    await new Promise((r) => setTimeout(r, 30));
  }
}

/** Whether a directory has entries other than `allowed` ones. */
export async function hasForeignEntries(dir: string, allowed: readonly string[]): Promise<boolean> {
  return (await readdir(dir).catch(() => [] as string[])).some((e) => !allowed.includes(e));
}
