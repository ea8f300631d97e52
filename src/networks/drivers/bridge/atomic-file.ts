/** Writing the network's run files so a reader (dnsmasq above all) never sees half of one. */
import { randomBytes } from "node:crypto";
import { chmod, rename, rm, writeFile } from "node:fs/promises";

/** Writes to a temporary name beside `file`, then renames it over `file`. */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode); // the umask does not decide who may read it
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
