import { badRequest } from "../api/errors.js";
import type { MemberType, TarMember } from "./tar-reader.js";

/**
 * What an archive holds: an image (a unified tarball, or the metadata tarball of a split image:
 * metadata.yaml, templates/, and rootfs/ or rootfs.img) or a bare rootfs (a split image's).
 */
export type ArchiveLayout = "image" | "rootfs" | "backup";

/**
 * The safety rule for unpacking an archive into a directory, checked on the member list before
 * anything is extracted. Refused: absolute paths and ".." components; names that are not plain
 * paths (see isPlainName); hard links whose target is absolute, climbs out with "..", passes
 * through a symlink of the archive, or is a device node; any entry written through (or over) a
 * symlink the archive created earlier; device nodes outside /dev. In an image, metadata.yaml
 * must be a regular file, templates/ and rootfs/ directories, and templates/ may hold only
 * regular files and directories: the daemon reads them as host root.
 * Symlinks themselves may point anywhere (a rootfs is full of "/bin/sh -> busybox"): they are
 * only dangerous when something is written through them, which is what the rule forbids.
 */
export function checkMembers(members: Iterable<TarMember>, what = "tarball", layout: ArchiveLayout = "image"): void {
  const check = memberChecker(what, layout);
  for (const m of members) check(m);
}

/** A stateful checker to call on each member in archive order (for streaming listings). */
export function memberChecker(what = "tarball", layout: ArchiveLayout = "image"): (m: TarMember) => void {
  const symlinks = new Set<string>();
  const devices = new Set<string>();
  const devDir = layout === "image" ? "rootfs/dev/" : "dev/";
  const isDevPath = (p: string) => (layout === "backup" ? /^backup\/(container|snapshots\/[^/]+)\/rootfs\/dev\//.test(p) : p.startsWith(devDir));
  const refuse = (m: TarMember, why: string) =>
    badRequest(`Unsafe ${layout === "backup" ? "backup" : "image"}: ${what} entry "${m.name}" ${why}; refusing to unpack it`);

  return (m) => {
    // GNU tar reads names as C strings: a NUL would make it act on a shorter name than the one checked.
    if (m.name.includes("\0") || m.linkname.includes("\0")) throw refuse(m, "contains a NUL byte");
    const path = normalizeMember(m.name);
    if (path === undefined) throw refuse(m, "has an absolute path");
    if (path === null) throw refuse(m, 'contains ".." and would land outside the target directory');
    if (path === "" && m.type !== "dir") throw refuse(m, `names the archive's root, which must be a directory, and is ${KINDS[m.type]}`);
    if (!isPlainName(m.name, m.type))
      throw refuse(m, 'is not a plain path (nothing but a single leading "./" may precede it, no "//" or "." components)');
    if (path === "") return;

    const through = symlinkPrefix(path, symlinks);
    if (through !== undefined)
      throw refuse(m, `would be written through the symlink "${through}", which may point outside the target directory`);
    if (symlinks.has(path) && m.type !== "symlink")
      throw refuse(m, "would replace a symlink the archive created earlier");

    if (m.type === "hardlink") {
      const target = normalizeMember(m.linkname);
      if (target === undefined || target === null || target === "")
        throw refuse(m, `is a hard link to "${m.linkname}", outside the target directory`);
      const via = symlinkPrefix(target, symlinks);
      if (via !== undefined)
        throw refuse(m, `is a hard link through the symlink "${via}", which may point outside the target directory`);
      // Device nodes are never extracted (see extractTarball), so a link to one has no target.
      if (devices.has(target)) throw refuse(m, `is a hard link to the device node "${m.linkname}"`);
      if (layout === "image" && isImageFile(target))
        throw refuse(m, `is a hard link to "${m.linkname}", which must not share its content with another file`);
      if (layout === "backup" && (!BACKUP_ROOTFS.test(path) || !BACKUP_ROOTFS.test(target)))
        throw refuse(m, `is a hard link to "${m.linkname}"; hard links may only join files inside an instance's rootfs/`);
    }
    if (m.type === "char" || m.type === "block") {
      if (!isDevPath(path)) throw refuse(m, `is a device node outside /dev (${layout === "backup" ? "rootfs/dev/" : devDir})`);
      devices.add(path);
    }
    if (layout === "image" || layout === "backup") {
      const wrong = layout === "image" ? imageLayoutError(path, m.type) : backupLayoutError(path, m.type);
      if (wrong) throw refuse(m, wrong);
    }
    if (m.type === "symlink") symlinks.add(path);
  };
}

/**
 * The daemon itself reads metadata.yaml and templates/ (as host root) and treats rootfs/ and
 * rootfs.img as the instance's root: each must be what its name says, or a link could swap in
 * a host file or directory.
 */
function imageLayoutError(path: string, type: MemberType): string | undefined {
  const is = `is ${KINDS[type]}`;
  if (path === "metadata.yaml" || path === "rootfs.img") return type === "file" ? undefined : `${is}, but ${path} must be a regular file`;
  if (path === "templates" || path === "rootfs") return type === "dir" ? undefined : `${is}, but ${path} must be a directory`;
  if (path.startsWith("templates/") && type !== "file" && type !== "dir")
    return `${is} under templates/, where only regular files and directories are allowed`;
  return undefined;
}

/** An instance volume's tree in a backup: backup/container or backup/snapshots/<name>. */
const BACKUP_VOLUME = /^backup\/(container|snapshots\/[^/]+)(\/|$)/;
const BACKUP_ROOTFS = /^backup\/(container|snapshots\/[^/]+)\/rootfs\//;
/** The header and the streams of an optimized backup: regular files, outside any volume tree. */
const OPTIMIZED_MEMBER = /^backup\/(optimized_header\.yaml|container\.bin|snapshots\/[^/]+\.bin)$/;

/**
 * LXD's backup tarball: backup/index.yaml, then one volume tree per snapshot
 * (backup/snapshots/<name>/) and the instance's (backup/container/), each laid out as an image
 * (metadata.yaml, templates/, rootfs/) plus backup.yaml; or, optimized, the driver's streams
 * instead of the trees (optimized_header.yaml, container.bin, snapshots/<name>.bin). The daemon
 * reads the YAML files as host root, so each must be a regular file, and every directory on the way a directory.
 */
function backupLayoutError(path: string, type: MemberType): string | undefined {
  const is = `is ${KINDS[type]}`;
  if (path === "backup" || path === "backup/snapshots") return type === "dir" ? undefined : `${is}, but ${path} must be a directory`;
  if (path === "backup/index.yaml") return type === "file" ? undefined : `${is}, but ${path} must be a regular file`;
  // An optimized backup's header and driver streams (backups/optimized.ts); the importer
  // refuses them in a backup whose index does not say it is optimized.
  if (type === "file" && OPTIMIZED_MEMBER.test(path)) return undefined;
  const vol = BACKUP_VOLUME.exec(path);
  if (!vol) return "is outside the backup's layout (backup/index.yaml, backup/container/, backup/snapshots/<name>/)";
  const rest = path.slice(vol[0].length);
  if (rest === "") return type === "dir" ? undefined : `${is}, but ${path} must be a directory`;
  if (rest === "backup.yaml") return type === "file" ? undefined : `${is}, but ${path} must be a regular file`;
  if (rest === "rootfs.img" || rest.startsWith("rootfs.img")) return "is a virtual machine's disk; only container backups can be imported";
  if (!/^(metadata\.yaml|templates|rootfs)(\/|$)/.test(rest)) return "is outside an instance volume's layout (backup.yaml, metadata.yaml, templates/, rootfs/)";
  return imageLayoutError(rest, type);
}

function isImageFile(path: string): boolean {
  return path === "metadata.yaml" || path.startsWith("templates/");
}

const KINDS: Record<MemberType, string> = {
  file: "a regular file",
  hardlink: "a hard link",
  symlink: "a symlink",
  char: "a character device",
  block: "a block device",
  dir: "a directory",
  fifo: "a FIFO",
};

/**
 * True when name is already in the form GNU tar writes: "a/b/c", with at most one leading "./"
 * (`tar -C dir .` writes "./bin/sh", as distribution rootfs tarballs do), a trailing "/" only
 * on a directory, and "./" (or ".") alone for the archive's root directory. Anything else
 * ("a//b", "a/./b", "././a") names the same file another way, and the unpacker's own list of
 * members to leave out matches names exactly, so it is refused rather than normalised.
 */
export function isPlainName(name: string, type: MemberType): boolean {
  if (name === "./" || name === ".") return type === "dir";
  let rest = name.startsWith("./") ? name.slice(2) : name;
  if (type === "dir" && rest.endsWith("/")) rest = rest.slice(0, -1);
  return rest.split("/").every((p) => p !== "" && p !== "." && p !== "..");
}

/**
 * A member path relative to the archive root without "./" and duplicate slashes; undefined if
 * absolute, null if it has a ".." component.
 */
export function normalizeMember(name: string): string | undefined | null {
  if (name.startsWith("/")) return undefined;
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") return null;
    parts.push(p);
  }
  return parts.join("/");
}

/** The first proper ancestor of `path` that is a known symlink. */
function symlinkPrefix(path: string, symlinks: ReadonlySet<string>): string | undefined {
  if (symlinks.size === 0) return undefined;
  let i = path.indexOf("/");
  while (i !== -1) {
    const prefix = path.slice(0, i);
    if (symlinks.has(prefix)) return prefix;
    i = path.indexOf("/", i + 1);
  }
  return undefined;
}
