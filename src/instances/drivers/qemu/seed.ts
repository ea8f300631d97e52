/**
 * The cloud-init NoCloud seed: an ISO9660 image labelled `cidata` holding meta-data
 * (instance-id, local-hostname), user-data, and vendor-data and network-config when the
 * instance sets them. Made anew at each start from the instance's config, attached read-only.
 *
 * NoCloud only takes a seed that has both meta-data and user-data, so an instance without
 * cloud-init.user-data gets an empty cloud-config, as LXD gives it.
 */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { run, which } from "../../../sys/exec.js";
import { InstanceDriverError } from "../../driver.js";
import type { VmSpec } from "../../driver.js";

export interface SeedInput {
  instanceId: string;
  hostname: string;
  cloudInit: VmSpec["cloudInit"];
}

/** The files of the seed, by name. */
export function seedFiles(s: SeedInput): Record<string, string> {
  const files: Record<string, string> = {
    "meta-data": `instance-id: ${JSON.stringify(s.instanceId)}\nlocal-hostname: ${JSON.stringify(s.hostname)}\n`,
    "user-data": s.cloudInit.userData ?? "#cloud-config\n{}\n",
  };
  if (s.cloudInit.vendorData !== undefined) files["vendor-data"] = s.cloudInit.vendorData;
  if (s.cloudInit.networkConfig !== undefined) files["network-config"] = s.cloudInit.networkConfig;
  return files;
}

/** Writes the seed ISO to `out` (replacing it) with genisoimage or xorriso. */
export async function makeSeedIso(out: string, s: SeedInput): Promise<void> {
  const tool = (await which("genisoimage")) ?? (await which("xorrisofs")) ?? (await which("mkisofs"));
  if (!tool) throw new InstanceDriverError("genisoimage or xorriso is needed for the cloud-init seed: install the genisoimage package");
  const dir = await mkdtemp(path.join(path.dirname(out), ".seed-"));
  try {
    const files = seedFiles(s);
    await Promise.all(Object.entries(files).map(([name, text]) => writeFile(path.join(dir, name), text, { mode: 0o600 })));
    const tmp = `${out}.tmp`;
    await run(tool, ["-quiet", "-output", tmp, "-volid", "cidata", "-joliet", "-rock", ...Object.keys(files).map((f) => path.join(dir, f))], { timeoutMs: 30_000 });
    await rename(tmp, out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
