/**
 * What a VM's guest is given besides its root disk and the seed: the config drive that carries
 * Lodge's guest agent, and host directories shared over 9p.
 */
import { access, stat } from "node:fs/promises";
import type { MountSpec } from "../../runconfig.js";
import type { VmSpec } from "../../driver.js";
import { makeConfigDrive } from "./config-drive.js";

/**
 * The config drive with the guest agent (config-drive.ts), when the agent binary is there;
 * without it the VM starts without the drive and only qemu-guest-agent can answer. Made at
 * every start, so a new Lodge brings a new agent.
 */
export async function makeAgentDrive(spec: VmSpec, agentBinary: string, runDir: string): Promise<string | undefined> {
  if (!(await access(agentBinary).then(() => true, () => false))) return undefined;
  // In the VM's runtime directory, not its volume: made anew at each boot, never snapshotted.
  return makeConfigDrive(runDir, agentBinary, { name: spec.name, hostname: spec.hostname ?? spec.name });
}

/**
 * Host paths shared with the guest (9p): directories only; a missing optional one is left out,
 * anything else that is not a directory is refused by name rather than by QEMU's error.
 */
export async function hostShares(mounts: MountSpec[]): Promise<MountSpec[]> {
  const out: MountSpec[] = [];
  for (const m of mounts) {
    const st = await stat(m.source).catch(() => undefined);
    if (!st && m.optional) continue;
    if (!st) throw new Error(`disk source ${m.source} does not exist`);
    if (!st.isDirectory()) throw new Error(`disk source ${m.source} is not a directory; a VM can share host directories only`);
    out.push(m);
  }
  return out;
}
