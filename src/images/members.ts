import { badRequest } from "../api/errors.js";
import type { TarMember } from "./tar-reader.js";

/**
 * The safety rule for unpacking an archive into a directory, checked on the member list before
 * anything is extracted. Refused: absolute paths and ".." components; hard links whose target
 * is absolute, climbs out with "..", or passes through a symlink of the archive; any entry
 * written through (or over) a symlink the archive created earlier; device nodes outside /dev.
 * Symlinks themselves may point anywhere (a rootfs is full of "/bin/sh -> busybox"): they are
 * only dangerous when something is written through them, which is what the rule forbids.
 */
export function checkMembers(members: Iterable<TarMember>, what = "tarball"): void {
  const check = memberChecker(what);
  for (const m of members) check(m);
}

/** A stateful checker to call on each member in archive order (for streaming listings). */
export function memberChecker(what = "tarball"): (m: TarMember) => void {
  const symlinks = new Set<string>();
  const refuse = (m: TarMember, why: string) =>
    badRequest(`Unsafe image: ${what} entry "${m.name}" ${why}; refusing to unpack it`);

  return (m) => {
    const path = normalizeMember(m.name);
    if (path === undefined) throw refuse(m, "has an absolute path");
    if (path === null) throw refuse(m, 'contains ".." and would land outside the target directory');
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
    }
    if ((m.type === "char" || m.type === "block") && !isDevPath(path))
      throw refuse(m, "is a device node outside /dev");
    if (m.type === "symlink") symlinks.add(path);
  };
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

function isDevPath(path: string): boolean {
  return /^(rootfs\/)?dev\//.test(path);
}
