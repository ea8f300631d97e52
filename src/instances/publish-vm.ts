/**
 * What a VM's image is made of when it is published: its volume's metadata (templates and the
 * kernel and initrd for a direct boot, in boot/) and its disk as one whole qcow2 `rootfs.img`,
 * flattened from the layer it may be over, compressed qcow2 clusters included, so the image
 * depends on nothing of the pool it came from (LXD's VM image layout, unified).
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import { diskOf, diskFormat } from "../storage/disk-images.js";
import { run } from "../sys/exec.js";

const exists = (p: string) => access(p).then(() => true, () => false);

/** Tar members (besides metadata.yaml) for a VM's volume at `volume`; the flat disk is written into `scratch`. */
export async function vmImageMembers(volume: string, scratch: string, signal?: AbortSignal): Promise<{ dir: string; name: string }[]> {
  const disk = await diskOf(volume);
  await run("qemu-img", ["convert", "-U", "-f", await diskFormat(disk), "-O", "qcow2", disk, join(scratch, "rootfs.img")], { signal, dieWithDaemon: true });
  const members = [{ dir: scratch, name: "rootfs.img" }];
  for (const d of ["templates", "boot"]) if (await exists(join(volume, d))) members.push({ dir: volume, name: d });
  return members;
}
