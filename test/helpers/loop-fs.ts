/**
 * Small XFS and ext4 filesystems on loop files, for tests of the dir driver's project quotas:
 * made in a temp directory and mounted there; `remove()` unmounts, detaches the loop device
 * and removes the files. The caller removes it after whatever uses the mount (a daemon, a
 * pool), also when the test fails.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "./daemon.js";

export interface LoopFs {
  /** Where it is mounted. */
  dir: string;
  kind: "xfs" | "ext4";
  /** Mounted with project quotas enforced (prjquota). */
  quotas: boolean;
  /** Why not, when not: the kernel's or the tool's words. */
  why?: string;
  /** Unmounts, detaches the loop device and removes the files; idempotent. */
  remove(): Promise<void>;
}

async function kernelSays(): Promise<string> {
  const r = await runCommand("dmesg", [], { allowFail: true });
  const lines = r.stdout.trim().split("\n").filter((l) => /quota|QFMT|XFS|EXT4/i.test(l));
  return lines.at(-1)?.replace(/^\[[^\]]*\]\s*/, "") ?? "";
}

/**
 * A `kind` filesystem of `sizeMiB` on a loop file, mounted with prjquota when `quotas` (for
 * ext4 made with the project and quota features). Where the kernel cannot enforce project
 * quotas the mount is tried again without (an XFS still keeps project ids); `quotas` then says
 * false and `why` the kernel's words. Undefined when it cannot be mounted at all (the tool is
 * missing, or ext4's quota feature needs what the kernel lacks).
 */
export async function loopFs(kind: "xfs" | "ext4", opts: { quotas: boolean; sizeMiB?: number }): Promise<LoopFs | { failed: string }> {
  const base = await mkdtemp(join(tmpdir(), `lodge-loopfs-${kind}-`));
  const img = join(base, "fs.img");
  const dir = join(base, "mnt");
  await mkdir(dir);
  await chmod(base, 0o711); // a container's root passes through to its rootfs
  await writeFile(img, "");
  await truncate(img, (opts.sizeMiB ?? 300) * 1024 * 1024);
  const remove = async () => {
    const mounted = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").some((l) => l.split(" ")[4] === dir);
    if (mounted && (await runCommand("umount", [dir], { allowFail: true })).code !== 0) await runCommand("umount", ["-l", dir], { allowFail: true });
    const loops = await runCommand("losetup", ["-j", img], { allowFail: true });
    for (const dev of loops.stdout.split("\n").map((l) => /^(\/dev\/loop\d+):/.exec(l)?.[1]).filter(Boolean)) await runCommand("losetup", ["-d", dev!], { allowFail: true });
    await rm(base, { recursive: true, force: true });
  };
  const mkfs = kind === "xfs" ? await runCommand("mkfs.xfs", ["-q", img], { allowFail: true }) : await runCommand("mkfs.ext4", ["-q", "-F", ...(opts.quotas ? ["-O", "project,quota"] : []), img], { allowFail: true });
  if (mkfs.code !== 0) {
    await remove();
    return { failed: `mkfs.${kind}: ${mkfs.stderr.trim() || `exit ${mkfs.code}`}` };
  }
  let quotas = opts.quotas;
  let why: string | undefined;
  let m = await runCommand("mount", ["-o", quotas ? "loop,prjquota" : "loop", img, dir], { allowFail: true });
  if (m.code !== 0 && quotas) {
    why = (await kernelSays()) || m.stderr.trim();
    quotas = false;
    m = await runCommand("mount", ["-o", "loop", img, dir], { allowFail: true });
  }
  if (m.code !== 0) {
    const said = why ?? ((await kernelSays()) || m.stderr.trim());
    await remove();
    return { failed: `mount ${kind}: ${said}` };
  }
  await chmod(dir, 0o711);
  return { dir, kind, quotas, why, remove };
}
