/**
 * The host side of a running container's NICs beyond the interfaces themselves: hairpin on
 * bridge ports, and filters and rates (sys/nic-policy.ts). A mark in the container's directory
 * says a filter table exists, so a start or stop without any spawns nothing.
 */
import { createHash } from "node:crypto";
import { access, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { applyNicPolicies, enableHairpin, removeNicPolicies, type NicPolicy } from "../../../sys/nic-policy.js";
import type { NicSpec } from "../../runconfig.js";

/**
 * The name of the container's filter table: its name, and a digest of its directory, so two
 * daemons on one host (tests run several) never share one, even with equal container names.
 */
export function nicPolicyOwner(containerDir: string, name: string): string {
  return `${name}-${createHash("sha256").update(path.resolve(containerDir)).digest("hex").slice(0, 8)}`;
}

export async function applyNicHostSides(containerDir: string, name: string, nics: readonly NicSpec[]): Promise<void> {
  await Promise.all(nics.filter((n) => n.type === "bridged" && n.hostName).map((n) => enableHairpin(n.hostName!)));
  const policies: NicPolicy[] = nics.filter((n) => n.hostName && (n.filter || n.rates)).map((n) => ({ hostName: n.hostName!, ...n.filter, ...n.rates }));
  if (policies.length === 0) return removeNicHostSides(containerDir, name);
  await writeFile(path.join(containerDir, "nic-policy"), "");
  await applyNicPolicies(nicPolicyOwner(containerDir, name), policies);
}

export async function removeNicHostSides(containerDir: string, name: string): Promise<void> {
  const mark = path.join(containerDir, "nic-policy");
  if (!(await access(mark).then(() => true, () => false))) return;
  await removeNicPolicies(nicPolicyOwner(containerDir, name));
  await rm(mark, { force: true });
}
