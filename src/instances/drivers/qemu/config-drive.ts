/**
 * The config drive: a small ext4 disk (label lodge-config) holding Lodge's agent and its
 * configuration, made afresh by the QEMU driver at every boot and attached read-only as a
 * virtio disk. The image's loader (src/images/builder/vm-boot.ts) finds it by its label,
 * copies the agent to a tmpfs and starts it; so upgrading Lodge upgrades every VM's agent at
 * its next boot. mkfs.ext4 -d writes the files straight in: no mount, no loop device.
 */
import { chmod, copyFile, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "../../../sys/exec.js";
import { nativePath } from "../../../sys/native.js";

export const CONFIG_DRIVE_LABEL = "lodge-config";
export const CONFIG_DRIVE_FILE = "config-drive.img";
/** The virtio-serial port the agent serves; QEMU's virtserialport carries this name. */
export const AGENT_PORT_NAME = "org.lodge.agent.0";

/** The agent binary built with Lodge (dist/lodge-agent), or $LODGE_AGENT. */
export function agentBinaryPath(): string {
  return nativePath("lodge-agent", "LODGE_AGENT");
}

/** agent.conf's settings (key=value lines); `port` defaults to AGENT_PORT_NAME. */
export type AgentConf = Record<string, string>;

/**
 * Writes `dir/config-drive.img` (replacing an older one) and returns its path. Attach it with
 * `-drive file=PATH,format=raw,if=virtio,readonly=on`.
 */
export async function makeConfigDrive(dir: string, agentBinary: string = agentBinaryPath(), conf: AgentConf = {}): Promise<string> {
  const settings = { port: AGENT_PORT_NAME, ...conf };
  for (const [k, v] of Object.entries(settings)) {
    if (!/^[a-z][a-z0-9_.-]*$/.test(k) || /[\r\n]/.test(v)) throw new Error(`agent.conf: invalid setting ${JSON.stringify(k)}=${JSON.stringify(v)}`);
  }
  const staging = await mkdtemp(path.join(dir, ".config-drive-"));
  const out = path.join(dir, CONFIG_DRIVE_FILE);
  const partial = `${out}.partial`;
  try {
    await copyFile(agentBinary, path.join(staging, "lodge-agent"));
    await chmod(path.join(staging, "lodge-agent"), 0o755);
    await writeFile(path.join(staging, "agent.conf"), Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(""), { mode: 0o644 });
    const size = (await stat(agentBinary)).size;
    const mib = Math.max(4, Math.ceil(size / 2 ** 20) + 2);
    // No journal: the guest mounts it read-only, and a read-only disk cannot be replayed.
    const r = await run(
      "mkfs.ext4",
      ["-q", "-F", "-L", CONFIG_DRIVE_LABEL, "-O", "^has_journal", "-E", "root_owner=0:0", "-d", staging, partial, `${mib}M`],
      { allowFail: true },
    );
    if (r.code !== 0) throw new Error(`mkfs.ext4 for the config drive failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    await rename(partial, out);
    return out;
  } finally {
    await rm(partial, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}
