import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseBool } from "../config/keys.js";
import { idmapFromJson } from "../sys/idmap.js";
import type { ContainerSpec, VmSpec } from "./driver.js";
import { buildVmSpec } from "./vm-spec.js";
import { lookupHostDevices } from "./devices/unix.js";
import { lookupVolumePaths, type ManagedVolumes } from "./devices/volumes.js";
import { expandConfig, expandDevices, runConfig } from "./expand.js";
import { hostName, type InstanceRecord } from "./record.js";
import type { ProfileLayer } from "../profiles/record.js";
import type { ProfileStore } from "../profiles/store.js";

/** Builds what the container driver needs from an instance record and its volume. */
export class ContainerSpecs {
  private memTotal?: Promise<number>;

  constructor(
    private readonly profiles: Pick<ProfileStore, "resolve">,
    private readonly volumes?: ManagedVolumes,
  ) {}

  private hostMemory(): Promise<number> {
    return (this.memTotal ??= readFile("/proc/meminfo", "utf8").then((t) => {
      const kb = /^MemTotal:\s+(\d+) kB/m.exec(t);
      return kb ? Number(kb[1]) * 1024 : 0;
    }));
  }

  /**
   * `lenient`: for a run-config that may already run (the state before a live update), devices
   * whose required source has gone are left out instead of failing. `layers`: the instance's
   * profiles as they are to be (a profile change being checked), else as stored.
   */
  async build(r: InstanceRecord, volumePath: string, opts: { lenient?: boolean; layers?: readonly ProfileLayer[] } = {}): Promise<ContainerSpec | VmSpec> {
    const layers = opts.layers ?? (await this.profiles.resolve(r.project, r.profiles));
    const config = expandConfig(r, layers);
    const devices = expandDevices(r, layers);
    if (r.type === "virtual-machine") {
      const run = runConfig(config, devices, {
        memory: await this.hostMemory(),
        devices: await lookupHostDevices(devices),
        volumes: await lookupVolumePaths(devices, this.volumes, r.project),
        lenient: opts.lenient,
      });
      return buildVmSpec({ name: hostName(r.project, r.name), hostname: r.name, volumePath, config, run, hostMemory: await this.hostMemory() });
    }
    const privileged = parseBool(config["security.privileged"]);
    const next = config["volatile.idmap.next"];
    const last = config["volatile.last_state.idmap"];
    const lastMap = last ? idmapFromJson(last) : [];
    return {
      name: hostName(r.project, r.name),
      rootfs: join(volumePath, "rootfs"),
      hostname: r.name,
      run: runConfig(config, devices, {
        memory: await this.hostMemory(),
        devices: await lookupHostDevices(devices),
        volumes: await lookupVolumePaths(devices, this.volumes, r.project),
        lenient: opts.lenient,
      }),
      privileged,
      idmap: !privileged && next ? idmapFromJson(next) : undefined,
      rootfsIdmap: lastMap.length > 0 ? lastMap : null,
      nesting: parseBool(config["security.nesting"]),
      rawLxc: config["raw.lxc"] || undefined,
    };
  }
}
