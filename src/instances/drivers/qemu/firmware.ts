/**
 * UEFI firmware for VMs that boot themselves: Debian's OVMF builds (the `ovmf` package). The
 * code is shared and read-only; each VM gets its own copy of the variable store (NVRAM), made
 * from the template at its first UEFI start and kept in the volume's state directory, so boot
 * entries survive restarts and travel with snapshots and copies.
 *
 * Secure boot takes the build with SMM and Microsoft's keys enrolled in the template (`.ms`),
 * as LXD does. Each variant has its own NVRAM file: switching security.secureboot does not feed
 * one firmware the other's variables.
 */
import { access, copyFile, constants } from "node:fs/promises";
import path from "node:path";
import { InstanceDriverError } from "../../driver.js";

export interface Firmware {
  code: string;
  /** This VM's variable store. */
  vars: string;
  secureboot: boolean;
}

const OVMF_DIRS = ["/usr/share/OVMF", "/usr/share/ovmf"];

const VARIANTS = {
  plain: { code: "OVMF_CODE_4M.fd", vars: "OVMF_VARS_4M.fd", nvram: "nvram.fd" },
  secure: { code: "OVMF_CODE_4M.ms.fd", vars: "OVMF_VARS_4M.ms.fd", nvram: "nvram.ms.fd" },
} as const;

const exists = (p: string) => access(p, constants.R_OK).then(() => true, () => false);

/** The firmware for a VM, its NVRAM made from the template when it has none yet. */
export async function prepareFirmware(stateDir: string, secureboot: boolean, dirs = OVMF_DIRS): Promise<Firmware> {
  const v = secureboot ? VARIANTS.secure : VARIANTS.plain;
  for (const dir of dirs) {
    const code = path.join(dir, v.code);
    const template = path.join(dir, v.vars);
    if (!(await exists(code)) || !(await exists(template))) continue;
    const vars = path.join(stateDir, v.nvram);
    // COPYFILE_EXCL: an existing store is the VM's own and is kept.
    await copyFile(template, vars, constants.COPYFILE_EXCL).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    return { code, vars, secureboot };
  }
  throw new InstanceDriverError(`UEFI firmware (${v.code}) not found in ${dirs.join(" or ")}: install the ovmf package, or give the image a kernel for direct boot`);
}
