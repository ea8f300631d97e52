/**
 * Host-side checks and file writes of the liblxc driver: the rootfs path an unprivileged root
 * must be able to reach, binds an unprivileged container cannot make, the PATH liblxc's tools
 * run with, config files written whole.
 */
import { constants } from "node:fs";
import { access, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { readSmall } from "../../../sys/small-file.js";
import { InstanceDriverError, type ContainerSpec } from "../../driver.js";
import { parseMountinfo } from "./netstate.js";

/**
 * The rootfs must exist, and an unprivileged container's root (a host uid without rights
 * of its own) must be able to pass through every directory above it: liblxc's failure for
 * that ("an error occurred in another process") names neither cause.
 */
export async function checkRootfsPath(spec: ContainerSpec): Promise<void> {
  // The rootfs and every directory above it, looked at all at once (a start's hot path).
  const dirs = [spec.rootfs];
  if (!spec.privileged) for (let dir = spec.rootfs; dir !== path.dirname(dir); ) dirs.push((dir = path.dirname(dir)));
  const stats = await Promise.all(dirs.map((d) => stat(d).catch(() => undefined)));
  if (!stats[0]?.isDirectory()) throw new InstanceDriverError(`container ${spec.name} failed to start: rootfs ${spec.rootfs} is not a directory`);
  const closed = dirs.findIndex((d, i) => i > 0 && !((stats[i]?.mode ?? 0) & 0o001));
  if (closed > 0) {
    throw new InstanceDriverError(`container ${spec.name} failed to start: ${dirs[closed]} must be searchable by others (mode o+x) for an unprivileged container's root to reach its rootfs`);
  }
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
