/**
 * Writing a file into a rootfs being built, resolving its path as the rootfs would (an absolute
 * symlink points inside the rootfs, never at the build host). Debian's /bin is a symlink to
 * usr/bin and /etc/resolv.conf may be one to /run/...: following either on the host would
 * write outside the image.
 */
import { chmod, constants, lstat, mkdir, open, readlink, rm } from "node:fs/promises";
import path from "node:path";

const MAX_LINKS = 40;

/**
 * The host path of `p` inside rootfs, its directories resolved (and created) within rootfs.
 * The last component is not followed: a symlink there is what the caller replaces.
 */
export async function resolveInRootfs(rootfs: string, p: string): Promise<string> {
  const pending = p.split("/").filter((c) => c && c !== ".");
  const last = pending.pop();
  if (!last || last === "..") throw new Error(`"${p}" does not name a file`);
  const at: string[] = []; // resolved components, relative to the rootfs
  let links = 0;
  while (pending.length) {
    const c = pending.shift()!;
    if (c === "..") {
      at.pop();
      continue;
    }
    const host = path.join(rootfs, ...at, c);
    const st = await lstat(host).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    if (!st) {
      await mkdir(host, { mode: 0o755 });
      at.push(c);
    } else if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new Error(`"${p}": too many levels of symbolic links in the rootfs`);
      const target = await readlink(host);
      if (target.startsWith("/")) at.length = 0;
      pending.unshift(...target.split("/").filter((x) => x && x !== "."));
    } else if (st.isDirectory()) {
      at.push(c);
    } else {
      throw new Error(`"${p}": /${[...at, c].join("/")} is not a directory in the rootfs`);
    }
  }
  return path.join(rootfs, ...at, last);
}

/** Writes content to `p` inside rootfs with the given mode, replacing a symlink or file there. */
export async function writeRootfsFile(rootfs: string, p: string, content: string | Buffer, mode: number): Promise<void> {
  const host = await resolveInRootfs(rootfs, p);
  const st = await lstat(host).catch(() => undefined);
  if (st?.isDirectory()) throw new Error(`"${p}" is a directory in the rootfs`);
  if (st?.isSymbolicLink()) await rm(host);
  const fh = await open(host, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
  await chmod(host, mode);
}
