/**
 * Host sources of devices, checked on the request that adds or changes a device, so a typo is
 * a 400 naming the device and nothing is stored (LXD checks a disk's source the same way). The
 * driver checks again at start, since a source may go away.
 */
import { stat } from "node:fs/promises";
import { badRequest } from "../../api/errors.js";
import { parseBool } from "../../config/keys.js";
import { isUnixDevice, lookupHostDevices, unixDeviceNode } from "./unix.js";

type Devices = Record<string, Record<string, string>>;

/**
 * Refuses (400) devices whose required host source is missing or of the wrong kind. With
 * `before`, only devices that are new or changed are checked, so an instance whose source went
 * away can still be edited (and the device removed).
 */
export async function checkDeviceSources(devices: Devices, before: Devices = {}): Promise<void> {
  const changed = Object.entries(devices).filter(([name, d]) => !sameDevice(d, before[name]));
  const unix = Object.fromEntries(changed.filter(([, d]) => isUnixDevice(d)));
  const host = await lookupHostDevices(unix);
  for (const [name, d] of Object.entries(unix)) unixDeviceNode(name, d, host);
  await Promise.all(
    changed.map(async ([name, d]) => {
      if (d.type !== "disk" || !d.source || d.path === "/" || d.pool) return;
      if (d.required !== undefined && !parseBool(d.required)) return;
      if (!(await stat(d.source).catch(() => undefined)))
        throw badRequest(`Device "${name}": source "${d.source}" does not exist on the host (or set required=false)`);
    }),
  );
}

function sameDevice(a: Record<string, string>, b: Record<string, string> | undefined): boolean {
  if (!b) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
