/**
 * A disk image's format, read from its header rather than taken from its name: QEMU must be
 * told (guessing from the content is refused for raw images, since a guest could write a qcow2
 * header into a raw disk and be given the host file named as its backing file).
 */
import { open } from "node:fs/promises";

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
