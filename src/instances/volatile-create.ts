/**
 * The volatile.* keys LXD sets when an instance is made (create, copy, import): its uuid, the
 * base image and the template trigger where the engine applies templates on the host, and an
 * id map where the engine runs instances in a user namespace (isolated maps get a range of
 * their own, away from every other instance's).
 */
import { randomUUID } from "node:crypto";
import { parseBool } from "../config/keys.js";
import { allocateIdmap, idmapConfig, idmapToJson, type HostIdPool } from "../sys/idmap.js";
import type { DriverCapabilities } from "./driver.js";
import type { InstanceRecord } from "./record.js";

export async function volatileAtCreate(
  r: InstanceRecord,
  o: { capabilities: DriverCapabilities; records: () => Promise<InstanceRecord[]>; hostPool: () => Promise<HostIdPool>; fingerprint?: string },
): Promise<Record<string, string>> {
  const out: Record<string, string> = { "volatile.uuid": randomUUID() };
  if (o.fingerprint) {
    out["volatile.base_image"] = o.fingerprint;
    if (o.capabilities.hostTemplates) out["volatile.apply_template"] = "create";
  }
  if (o.capabilities.idmap && !parseBool(r.config["security.privileged"])) {
    const taken = (await o.records()).flatMap((x) => {
      const base = Number(x.config["volatile.idmap.base"] ?? 0);
      return base > 0 ? [{ hostid: base, range: Number(x.config["security.idmap.size"] ?? 65536) }] : [];
    });
    const alloc = allocateIdmap(await o.hostPool(), idmapConfig(r.config), taken);
    out["volatile.idmap.base"] = String(alloc.base);
    out["volatile.idmap.next"] = idmapToJson(alloc.entries);
    out["volatile.last_state.idmap"] = "[]";
  }
  return out;
}
