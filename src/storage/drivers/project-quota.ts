/**
 * Project quotas for directory volumes, on XFS and ext4: a volume's directory gets a project
 * id of its own with the inherit flag, so everything made in it is charged to that project, and
 * the volume's size is the project's hard block limit. The kernel keeps a project's usage, so
 * reading it is one quotactl, no walk of the tree (instance state reads it for `lxc list`).
 *
 * The id is derived from the inode number of the volume's directory (plus ID_BASE, leaving the
 * low ids to a host's own projects in /etc/projid), and it is kept by the filesystem itself, in
 * the directory's attributes: no record elsewhere can disagree with it. Two live volumes on one
 * filesystem never share an id because they never share an inode; a directory that replaces
 * another (a restore) takes its own inode's id and the old one's limit, and a deleted volume's
 * limit is lifted before its inode is freed, so whoever gets the inode next starts unlimited.
 *
 * A process inside an unprivileged container cannot change a project id (the kernel allows
 * that from the initial user namespace only), so it cannot move its files out of the quota.
 * On ext4 a process with CAP_SYS_RESOURCE on the host (the daemon) is not held to the limit;
 * a container is. XFS holds everyone to it.
 */
import { readFile, readdir, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import { nativeCalls } from "../../sys/native.js";

/** Project ids below this are left to the host's own use. */
export const ID_BASE = 10_000;
const MAX_ID = 0xffff_fffe; // (u32)-1 means "no id" to some tools

const XFS_MAGIC = 0x58465342;
const EXT4_MAGIC = 0xef53;

export interface MountEntry {
  major: number;
  minor: number;
  mountPoint: string;
  fsType: string;
  /** Per-mount and superblock options together. */
  options: Set<string>;
}

/** /proc/self/mountinfo's lines (proc(5)): mount point octal escapes undone. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-", 6);
    if (dash < 0 || f.length < dash + 4) continue;
    const [major, minor] = f[2]!.split(":").map(Number);
    out.push({
      major: major!,
      minor: minor!,
      mountPoint: f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
      fsType: f[dash + 1]!,
      options: new Set([...f[5]!.split(","), ...f[dash + 3]!.split(",")]),
    });
  }
  return out;
}

/** Whether a mount enforces project quotas (accounting alone, XFS's pqnoenforce, does not limit). */
export function enforcesProjectQuotas(m: MountEntry): boolean {
  if (m.fsType === "xfs") return m.options.has("prjquota") || m.options.has("pquota");
  if (m.fsType === "ext4") return m.options.has("prjquota");
  return false;
}

/** Linux's dev_t split into major and minor, as mountinfo shows them. */
function deviceNumbers(dev: bigint): { major: number; minor: number } {
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)),
  };
}

/**
 * Whether the filesystem holding `dir` enforces project quotas: XFS or ext4 (statfs) mounted
 * with prjquota (mountinfo, the mount with the directory's device numbers), and the native
 * module there to set ids and limits. Nothing is spawned.
 */
export async function projectQuotasEnabled(dir: string): Promise<boolean> {
  if (!nativeCalls()) return false;
  const [fs, st, info] = await Promise.all([statfs(dir).catch(() => undefined), stat(dir, { bigint: true }).catch(() => undefined), readFile("/proc/self/mountinfo", "utf8").catch(() => "")]);
  if (!fs || !st || (fs.type !== XFS_MAGIC && fs.type !== EXT4_MAGIC)) return false;
  const { major, minor } = deviceNumbers(st.dev);
  const mounts = parseMountinfo(info).filter((m) => m.major === major && m.minor === minor);
  return mounts.length > 0 && mounts.every(enforcesProjectQuotas);
}

/** The project id `dir`'s inode stands for, or undefined when it is beyond the 32-bit ids (XFS inode64). */
async function idFor(dir: string): Promise<number | undefined> {
  const id = (await stat(dir, { bigint: true })).ino + BigInt(ID_BASE);
  return id <= BigInt(MAX_ID) ? Number(id) : undefined;
}

/** The project of `dir` when it has one of its own (set here, inherited by what is made in it). */
function ownProject(dir: string): number | undefined {
  const p = nativeCalls()?.projectOf(dir);
  return p && p.inherit && p.id >= ID_BASE ? p.id : undefined;
}

/**
 * Gives the new, still empty directory `dir` a project of its own, passed on to everything made
 * in it later, with no limit (one a deleted volume with this inode left by a crash goes). Does
 * nothing where the filesystem keeps no project ids, so it may be called on any pool.
 */
export async function assignProject(dir: string): Promise<void> {
  const native = nativeCalls();
  if (!native || !native.projectOf(dir)) return;
  const id = await idFor(dir);
  if (id === undefined) return; // setProjectLimit says why, if a limit is ever asked for
  try {
    native.setProject(dir, id, true);
  } catch (e) {
    // ext4 without the "project" feature, btrfs and tmpfs read ids (all 0) but cannot set them.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EOPNOTSUPP" || code === "ENOTTY") return;
    throw e;
  }
  if (native.projectQuota(dir, id)?.limit) native.setProjectLimit(dir, id, 0);
}

/**
 * Gives the tree at `dir` its project, file by file (a volume made before its pool had project
 * quotas, or by an older Lodge). Symlinks and device nodes keep theirs: they hold no data blocks.
 */
async function assignTree(dir: string, id: number): Promise<void> {
  const native = nativeCalls()!;
  native.setProject(dir, id, true);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) await assignTree(path, id);
    else if (e.isFile()) native.setProject(path, id, false);
  }
}

/**
 * Limits what the tree at `dir` may hold to `bytes` (undefined lifts the limit). Call only where
 * projectQuotasEnabled; a tree without its project gets it first.
 */
export async function setProjectLimit(dir: string, bytes: number | undefined): Promise<void> {
  const native = nativeCalls();
  if (!native) throw new Error("project quotas need the native module lodge-native.node, which is not built");
  let id = ownProject(dir);
  if (id === undefined) {
    if (bytes === undefined) return;
    id = await idFor(dir);
    if (id === undefined) throw new Error(`${dir} cannot have a project quota: its inode number is beyond the 32-bit project ids`);
    await assignTree(dir, id);
  }
  native.setProjectLimit(dir, id, bytes ?? 0);
}

/** Bytes charged to the project of `dir`; undefined when it has none or quotas are off. */
export async function projectUsage(dir: string): Promise<number | undefined> {
  const native = nativeCalls();
  if (!native) return undefined;
  let id: number | undefined;
  try {
    id = ownProject(dir);
  } catch {
    return undefined; // no such volume
  }
  return id === undefined ? undefined : native.projectQuota(dir, id)?.bytes;
}

/** The limit of `dir`'s project, in bytes; undefined when there is none. */
export function projectLimit(dir: string): number | undefined {
  const id = ownProject(dir);
  const limit = id === undefined ? 0 : (nativeCalls()!.projectQuota(dir, id)?.limit ?? 0);
  return limit > 0 ? limit : undefined;
}

/** Gives `to` (a tree replacing `from`) the limit of `from`'s project, if it has one. */
export async function carryProjectLimit(from: string, to: string): Promise<void> {
  let limit: number | undefined;
  try {
    limit = projectLimit(from);
  } catch {
    return; // `from` is gone (a restore done again after a crash)
  }
  if (limit !== undefined) await setProjectLimit(to, limit);
}

/** Lifts the limit of `dir`'s project; call before the tree is removed (its inode then goes to others). */
export async function releaseProject(dir: string): Promise<void> {
  const native = nativeCalls();
  let id: number | undefined;
  try {
    id = ownProject(dir);
  } catch {
    return; // gone already
  }
  if (native && id !== undefined && native.projectQuota(dir, id)?.limit) native.setProjectLimit(dir, id, 0);
}
