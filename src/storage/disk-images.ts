/**
 * VM disk images in a volume: `root.img` (an instance's disk) or `rootfs.img` (an image's, as
 * LXD's VM images carry it), qcow2 or raw. A VM made from an image on a pool without block
 * clones gets a qcow2 layer backed by the image volume's disk: creating it is O(1), and the
 * image volume is kept while such a layer needs it. The size of a VM's root disk is the
 * disk image's virtual size.
 */
import { access, mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../sys/exec.js";

const exists = (p: string) => access(p).then(() => true, () => false);

/** The disk image of a VM or image volume. */
export async function diskOf(volumePath: string): Promise<string> {
  for (const f of ["root.img", "rootfs.img"]) if (await exists(join(volumePath, f))) return join(volumePath, f);
  throw new Error(`the volume at ${volumePath} holds no disk image (root.img or rootfs.img)`);
}

/** qcow2 or raw, from the file's first bytes (QEMU's own probe, without spawning it). */
export async function diskFormat(path: string): Promise<"qcow2" | "raw"> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 0);
    return buf.toString("latin1") === "QFI\xfb" ? "qcow2" : "raw";
  } finally {
    await fh.close();
  }
}

/**
 * Makes the VM volume `volumePath` (which must not exist) a qcow2 layer over the image
 * volume's disk, with the image's other files (metadata, templates, boot/) copied beside it.
 * Nothing is left of a failed one.
 */
export async function createDiskLayer(imageVolume: string, volumePath: string, signal?: AbortSignal): Promise<void> {
  const backing = await diskOf(imageVolume);
  await mkdir(volumePath, { mode: 0o700 });
  try {
    const files = (await readdir(imageVolume)).filter((e) => !["root.img", "rootfs.img", "backup.yaml"].includes(e));
    if (files.length) await run("cp", ["-a", "--reflink=auto", "--", ...files.map((f) => join(imageVolume, f)), volumePath], { signal, dieWithDaemon: true });
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", await diskFormat(backing), "-b", backing, join(volumePath, "root.img")], { signal, dieWithDaemon: true });
  } catch (e) {
    await rm(volumePath, { recursive: true, force: true });
    throw e;
  }
}

/** Virtual size of a disk image, in bytes. */
export async function diskSize(path: string): Promise<number> {
  const out = await run("qemu-img", ["info", "--output=json", "-U", path]);
  return Number((JSON.parse(out.stdout) as { "virtual-size": number })["virtual-size"]);
}

/** Grows a VM's disk to `bytes` (a root disk `size`); shrinking would lose data and is refused. */
export async function resizeDisk(volumePath: string, bytes: number): Promise<void> {
  const disk = await diskOf(volumePath);
  const now = await diskSize(disk);
  if (bytes === now) return;
  if (bytes < now) throw new Error(`the disk is ${now} bytes: a size of ${bytes} would shrink it, which loses data`);
  await run("qemu-img", ["resize", "-q", "-f", await diskFormat(disk), disk, String(bytes)]);
}
