/**
 * The dir driver's layered mode: an instance volume's rootfs is an overlayfs mount whose lower
 * layer is a read-only image volume of the pool and whose upper layer holds the instance's own
 * changes, in `<pool>/layers/<type dir>/<name>/{upper,work,lower}` (lower: a link to the image
 * volume). Creating an instance is then a few mkdirs and a mount, whatever the backing
 * filesystem (ext4 has no reflinks). The volume directory keeps LXD's layout.
 *
 * Ownership. An overlayfs mount cannot itself be idmapped, and an idmapped upper layer cannot
 * be written by host root (overlayfs cannot make its work directory through the mapping). So
 * the lower layer is an idmapped mount of the image volume (the image's own ids, seen shifted
 * to the instance's id map: no copy per map), and the upper layer is a plain directory that
 * holds shifted ids, which is what copy-up writes. The idmapped mount exists only while the
 * overlay is mounted (overlayfs keeps its own private clone of it). The liblxc driver sees an
 * overlay rootfs, which it cannot idmap, and starts it "layered": stored shifted, as
 * volatile.last_state.idmap says.
 *
 * The overlay is mounted by host root, in the host's mount namespace, for as long as the
 * volume exists (and again at each daemon start: a host reboot drops it), so everything that
 * reads or writes `<volume>/rootfs` on the host (snapshots, copies, backups, publish, the file
 * API of a stopped instance) sees the whole tree as a plain directory would show it.
 *
 * The image is untrusted: the mount follows no redirects and no metacopy xattrs that a
 * layer might carry (redirect_dir=nofollow, metacopy=off), and the lower volume is reachable
 * by host root alone (0700), so no container reaches it but through its own overlay.
 */
import { chown, lstat, mkdir, readFile, readlink, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { run } from "../../sys/exec.js";
import { idmapFromJson, idmapToJson, lxcIdmapLines, toHost, type IdmapEntry } from "../../sys/idmap.js";
import { nativePath } from "../../sys/native.js";

/** The pool's directory of layers (root's alone). */
export const LAYERS_DIR = "layers";

/** Where a volume's layer lives: `<pool>/layers/<type dir>/<name>`. */
export function layerDir(volumePath: string): string {
  const typeDir = dirname(volumePath);
  return join(dirname(typeDir), LAYERS_DIR, basename(typeDir), basename(volumePath));
}

/** Whether a volume is layered (has a layer directory beside it). */
export async function isLayered(volumePath: string): Promise<boolean> {
  return !!(await lstat(layerDir(volumePath)).catch(() => undefined));
}

/** Overlay options take paths with `,` `:` and `\` specially; such paths are never layered. */
export function layerablePath(path: string): boolean {
  return !/[,:\\\s]/.test(path);
}

/** The lower volume a layered volume sits on (its `lower` link). */
export async function lowerOf(volumePath: string): Promise<string> {
  const link = join(layerDir(volumePath), "lower");
  return join(dirname(link), await readlink(link));
}

/**
 * Makes `volumePath` a layered volume over the (whole, read-only) volume `lowerPath`: the
 * layer's directories, the volume directory with the lower's files but its rootfs (metadata,
 * templates), and the mount. On failure nothing of it is left.
 */
/**
 * `prepareLayer` readies the layer directory before its upper and work directories are made in
 * it (a quota project they inherit: both must be in it, or XFS refuses overlayfs's renames
 * from work to upper with EXDEV).
 */
export async function createLayer(
  lowerPath: string,
  volumePath: string,
  idmap: readonly IdmapEntry[] | undefined,
  signal?: AbortSignal,
  prepareLayer?: (dir: string) => Promise<void>,
): Promise<void> {
  const layer = layerDir(volumePath);
  const root = await lstat(join(lowerPath, "rootfs"));
  try {
    await mkdir(dirname(layer), { recursive: true, mode: 0o700 });
    await mkdir(layer, { mode: 0o700 });
    await prepareLayer?.(layer);
    if (idmap?.length) await writeFile(join(layer, "idmap"), idmapToJson(idmap), { mode: 0o600 });
    await mkdir(join(layer, "upper"), { mode: root.mode & 0o7777 });
    // The merged root takes the upper root's owner and mode: the image's root's, shifted.
    const uid = idmap?.length ? toHost(idmap, "u", root.uid) : root.uid;
    const gid = idmap?.length ? toHost(idmap, "g", root.gid) : root.gid;
    if (uid === undefined || gid === undefined) throw new Error(`the image's root directory is owned by ${root.uid}:${root.gid}, outside the id map`);
    await chown(join(layer, "upper"), uid, gid);
    await mkdir(join(layer, "work"), { mode: 0o700 });
    // Relative, so the pool can move (its `source`) without breaking the link.
    await symlink(relative(layer, lowerPath), join(layer, "lower"));
    await mkdir(volumePath, { mode: 0o700 });
    const files = (await readdir(lowerPath)).filter((e) => e !== "rootfs" && e !== "backup.yaml");
    if (files.length) await run("cp", ["-a", "--reflink=auto", "--", ...files.map((f) => join(lowerPath, f)), volumePath], { signal, dieWithDaemon: true });
    await mkdir(join(volumePath, "rootfs"), { mode: 0o755 });
    await mountLayer(volumePath);
  } catch (e) {
    await removeLayer(volumePath).catch(() => {});
    await rm(volumePath, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Makes `to` a layered volume over the same lower as the layered volume `from`, with a copy of
 * its upper layer (whiteouts and opaque directories kept: cp -a copies the 0/0 device nodes
 * and trusted.* xattrs that mark them): a copy costs what the instance changed, not its size.
 */
export async function copyLayer(from: string, to: string, signal?: AbortSignal, prepareLayer?: (dir: string) => Promise<void>): Promise<void> {
  const lower = await lowerOf(from);
  await createLayer(lower, to, await idmapOf(from), signal, prepareLayer);
  const upper = join(layerDir(to), "upper");
  try {
    await unmountLayer(to);
    // Into the prepared upper directory: "upper/." brings the contents and the top's attributes.
    await run("cp", ["-a", "--reflink=auto", "--", `${join(layerDir(from), "upper")}/.`, upper], { signal, dieWithDaemon: true });
    const files = (await readdir(from)).filter((e) => e !== "rootfs" && e !== "backup.yaml");
    for (const f of files) await rm(join(to, f), { recursive: true, force: true });
    if (files.length) await run("cp", ["-a", "--reflink=auto", "--", ...files.map((f) => join(from, f)), to], { signal, dieWithDaemon: true });
    await mountLayer(to);
  } catch (e) {
    await removeLayer(to).catch(() => {});
    await rm(to, { recursive: true, force: true });
    throw e;
  }
}

/** The id map a layered volume's lower layer is seen through (none: the image's own ids). */
export async function idmapOf(volumePath: string): Promise<IdmapEntry[] | undefined> {
  const text = await readFile(join(layerDir(volumePath), "idmap"), "utf8").catch(() => undefined);
  return text ? idmapFromJson(text) : undefined;
}

/**
 * Mounts a layered volume's overlay at its rootfs (it must not be mounted). With an id map,
 * the lower layer is first mounted idmapped (read-only) inside the layer directory, and that
 * mount is detached again once the overlay holds its own clone of it.
 */
export async function mountLayer(volumePath: string): Promise<void> {
  const layer = layerDir(volumePath);
  let lower = join(await lowerOf(volumePath), "rootfs");
  const idmap = await idmapOf(volumePath);
  const staged = join(layer, "lower-mnt");
  if (idmap?.length) {
    const helper = nativePath("lodge-hotplug", "LODGE_HOTPLUG");
    await run(helper, ["unstage", staged], { allowFail: true });
    await mkdir(staged, { mode: 0o700 });
    await run(helper, ["stage", "--readonly", ...lxcIdmapLines(idmap).flatMap((l) => ["--map", l]), lower, staged]);
    lower = staged;
  }
  try {
    const opts = [`lowerdir=${lower}`, `upperdir=${join(layer, "upper")}`, `workdir=${join(layer, "work")}`, "redirect_dir=nofollow", "metacopy=off", "index=off", "xino=off"];
    await run("mount", ["-t", "overlay", "-o", opts.join(","), `lodge-${basename(volumePath)}`.slice(0, 60), join(volumePath, "rootfs")]);
  } finally {
    if (idmap?.length) await run(nativePath("lodge-hotplug", "LODGE_HOTPLUG"), ["unstage", staged]);
  }
}

/** Unmounts a layered volume's overlay if it is mounted (lazily when something holds it). */
export async function unmountLayer(volumePath: string, mounted?: Set<string>): Promise<void> {
  const target = join(volumePath, "rootfs");
  if (!(mounted ?? (await mountPoints())).has(target)) return;
  try {
    await run("umount", [target]);
  } catch {
    await run("umount", ["-l", target]);
  }
}

/** Unmounts and removes a volume's layer (the volume directory itself is the caller's). */
export async function removeLayer(volumePath: string): Promise<void> {
  await unmountLayer(volumePath);
  await rm(layerDir(volumePath), { recursive: true, force: true });
}

/**
 * Mounts every layered volume of the type directory `typeDir` whose overlay is not mounted
 * (after a host reboot, or a daemon that was stopped for one). Returns how many it mounted.
 */
export async function remountLayers(typeDir: string): Promise<number> {
  const mounted = await mountPoints();
  const layers = join(dirname(typeDir), LAYERS_DIR, basename(typeDir));
  let count = 0;
  for (const e of await readdir(layers).catch(() => [] as string[])) {
    const volume = join(typeDir, e);
    if (mounted.has(join(volume, "rootfs"))) continue;
    const rootfs = await readdir(join(volume, "rootfs")).catch(() => undefined);
    if (!rootfs) continue; // half made: the service's clean-up removes it
    if (rootfs.length) {
      // A plain tree under a layer: a restore made it plain and a crash came before the
      // layer went. The tree is the volume's content now.
      await rm(join(layers, e), { recursive: true, force: true });
      continue;
    }
    await mountLayer(volume);
    count++;
  }
  return count;
}

/** Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes undone). */
export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const m = line.split(" ")[4];
    if (m) out.add(m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}
