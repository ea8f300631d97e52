/**
 * A disk image's format, read from its header rather than taken from its name: QEMU must be
 * told (guessing from the content is refused for raw images, since a guest could write a qcow2
 * header into a raw disk and be given the host file named as its backing file).
 */
import { open, readFile, writeFile } from "node:fs/promises";

export type DiskFormat = "qcow2" | "raw";

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"

export async function probeDiskFormat(file: string): Promise<DiskFormat> {
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(QCOW2_MAGIC) ? "qcow2" : "raw";
  } finally {
    await fh.close();
  }
}

/**
 * The root disk's format: probed from its header the first time, then kept in `record`. A guest
 * can write a qcow2 header into a raw disk; probing again at each start would then open it as
 * qcow2, with whatever host file that header names as its backing file. A disk whose header no
 * longer matches is refused.
 */
export async function keptDiskFormat(disk: string, record: string): Promise<DiskFormat> {
  const kept = (await readFile(record, "utf8").catch(() => undefined))?.trim();
  const probed = await probeDiskFormat(disk).catch((e: Error) => {
    throw new Error(`root disk ${disk}: ${e.message}`);
  });
  if (kept === "raw" || kept === "qcow2") {
    if (kept !== probed) throw new Error(`root disk ${disk} now looks like ${probed}, but it was ${kept}; refusing to open it as ${probed}`);
    return kept;
  }
  await writeFile(record, probed + "\n");
  return probed;
}
