import { hostResources } from "../../sys/resources/index.js";
import { sync, type Route } from "../route.js";

/**
 * GET /1.0/resources: the host's CPUs, memory, GPUs, NICs, disks, USB and PCI devices and
 * system identity (`lxc info --resources`; `lxc storage info` needs the extension too). The
 * reads are synchronous sysfs reads of a few milliseconds; `root` lets tests use a fake tree.
 */
export function resourceRoutes(deps: { root?: string } = {}): Route[] {
  return [{ method: "GET", path: "/1.0/resources", access: "trusted", handler: () => sync(hostResources(deps.root)) }];
}
