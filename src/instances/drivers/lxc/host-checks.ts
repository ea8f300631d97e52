/**
 * Host-side checks and file writes of the liblxc driver: the rootfs path an unprivileged root
 * must be able to reach, binds an unprivileged container cannot make, the PATH liblxc's tools
 * run with, config files written whole.
 */
import { constants } from "node:fs";
import type { Stats } from "node:fs";
import { access, chmod, chown, lstat, mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { toHost } from "../../../sys/idmap.js";
import { readSmall } from "../../../sys/small-file.js";
import { InstanceDriverError, type ContainerSpec } from "../../driver.js";
import { parseMountinfo } from "./netstate.js";

/**
 * The rootfs must exist, and the instance's directory above it (its volume) is its one door:
 * opened to the container's root alone (openDoor). Every directory further up must be
 * searchable by others for that root to pass: liblxc's failure for that ("an error occurred
 * in another process") names no cause.
 */
export async function checkRootfsPath(spec: ContainerSpec): Promise<void> {
  // The rootfs and every directory above it, looked at all at once (a start's hot path).
  const dirs = [spec.rootfs];
  for (let dir = spec.rootfs; dir !== path.dirname(dir); ) dirs.push((dir = path.dirname(dir)));
  const stats = await Promise.all(dirs.map((d) => stat(d).catch(() => undefined)));
  if (!stats[0]?.isDirectory()) throw new InstanceDriverError(`container ${spec.name} failed to start: rootfs ${spec.rootfs} is not a directory`);
  await openDoor(dirs[1]!, containerRoot(spec), stats[1]);
  const closed = spec.privileged ? -1 : dirs.findIndex((d, i) => i > 1 && !((stats[i]?.mode ?? 0) & 0o001));
  if (closed > 0) {
    throw new InstanceDriverError(`container ${spec.name} failed to start: ${dirs[closed]} must be searchable by others (mode o+x) for an unprivileged container's root to reach its rootfs`);
  }
}

/** The host ids of the container's root (root's own for a privileged container). */
export function containerRoot(spec: ContainerSpec): { uid: number; gid: number } {
  if (spec.privileged) return { uid: 0, gid: 0 };
  const uid = toHost(spec.idmap ?? [], "u", 0);
  const gid = toHost(spec.idmap ?? [], "g", 0);
  if (uid === undefined || gid === undefined) throw new InstanceDriverError(`container ${spec.name}: its id map does not map root`);
  return { uid, gid };
}

/**
 * Makes a directory that leads to a container's files passable by that container's root and
 * by no other host user: mode 0100, owned by the host ids its root maps to, as LXD does. What
 * lies below holds files that are host root's on disk (an idmapped rootfs stores container
 * root as uid 0, set-uid bits included) or device nodes; the container's root must pass, as
 * liblxc's child sets up its mounts from inside the user namespace. Changes only what differs.
 */
export async function openDoor(dir: string, owner: { uid: number; gid: number }, known?: Stats): Promise<void> {
  const st = known ?? (await stat(dir));
  if (st.uid !== owner.uid || st.gid !== owner.gid) await chown(dir, owner.uid, owner.gid);
  if ((st.mode & 0o7777) !== 0o100) await chmod(dir, 0o100);
}

/**
 * Makes a directory of per-container entries (0711: containers' roots pass through it), and
 * closes each entry to host users other than root where an older Lodge left it open (0711
 * entries; a door of 0100 stays). Returns how many it closed.
 */
export async function restrictEntries(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
  let closed = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const p = path.join(dir, e.name);
    const st = await lstat(p);
    if ((st.mode & 0o077) === 0) continue;
    await chmod(p, st.mode & 0o700);
    closed++;
  }
  return closed;
}

/** PATH without the directories that hold newuidmap or newgidmap. */
export async function withoutShadowHelpers(PATH: string): Promise<string> {
  const keep: string[] = [];
  for (const dir of PATH.split(":").filter(Boolean)) {
    const has = await Promise.all(["newuidmap", "newgidmap"].map((b) => access(path.join(dir, b), constants.X_OK).then(() => true, () => false)));
    if (!has.some(Boolean)) keep.push(dir);
  }
  return keep.join(":") || "/nonexistent";
}

/**
 * Writes a file whole: readers see the old or the new content, never a part. A file that
 * already holds the content is left alone (a start rewrites the same config most times).
 */
export async function atomicWrite(file: string, content: string): Promise<void> {
  if ((await readFile(file, "utf8").catch(() => undefined)) === content) return;
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}

/**
 * An unprivileged container may only bind a host tree together with the mounts below it (the
 * kernel refuses a non-recursive bind that would uncover what they hide, and liblxc then says
 * only "Invalid argument"): such a disk needs recursive=true. Reads the host's mount table only
 * when a non-recursive bind could be refused.
 */
export async function checkSubmounts(spec: ContainerSpec): Promise<void> {
  if (spec.privileged) return;
  const plain = spec.run.mounts.filter((m) => !m.recursive);
  if (!plain.length) return;
  const points = parseMountinfo((await readSmall("/proc/self/mountinfo")) ?? "").map((m) => m.mountPoint);
  for (const m of plain) {
    const below = points.find((p) => p.startsWith(`${m.source.replace(/\/+$/, "")}/`));
    if (below)
      throw new InstanceDriverError(`container ${spec.name} failed to start: disk ${m.target}: ${m.source} has a mount below it (${below}); an unprivileged container can only bind it with its sub-mounts: set recursive=true`);
  }
}
