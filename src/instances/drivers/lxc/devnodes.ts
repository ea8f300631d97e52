/**
 * The device nodes of a container's unix-char and unix-block devices, made on the host in a
 * directory of its own (DIR/NAME/unix.DEVICE), owned by the host ids that the container's ids
 * map to, and bound in: by liblxc at start (an lxc.mount.entry), by hot-plug while it runs.
 * Node cannot mknod(2), so the native helper (native/hotplug) makes them. The parent is 0711
 * and each container's directory a door for its root alone (host-checks.ts openDoor): liblxc
 * binds the nodes in from inside the user namespace, and no host user may open a node that
 * the container was given (its mode says who may, inside).
 */
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { run } from "../../../sys/exec.js";
import { toHost } from "../../../sys/idmap.js";
import { nativePath } from "../../../sys/native.js";
import { InstanceDriverError, type ContainerSpec } from "../../driver.js";
import type { DeviceNodeSpec } from "../../runconfig.js";
import { deviceNodeFile } from "./config.js";
import { containerRoot, openDoor, restrictEntries } from "./host-checks.js";

/** The native helper for device nodes and live mounts: $LODGE_HOTPLUG, else dist/lodge-hotplug. */
export function hotplugHelperPath(): string {
  return nativePath("lodge-hotplug", "LODGE_HOTPLUG");
}

export class DeviceNodes {
  constructor(
    /** Parent of the per-container directories. */
    readonly root: string,
    private readonly helper: () => string = hotplugHelperPath,
  ) {}

  /** At daemon start: the parent directory, and what an older Lodge left open in it closed. */
  init(): Promise<number> {
    return restrictEntries(this.root);
  }

  dir(name: string): string {
    return path.join(this.root, name);
  }

  file(name: string, n: DeviceNodeSpec): string {
    return deviceNodeFile(this.dir(name), n);
  }

  /** Makes every node of the spec afresh (nothing of an earlier run is kept). */
  async prepare(spec: ContainerSpec): Promise<void> {
    await this.removeAll(spec.name);
    if (spec.run.deviceNodes.length === 0) return;
    for (const n of spec.run.deviceNodes) await this.create(spec, n);
  }

  /** Makes (or replaces) one node; returns its host path. */
  async create(spec: ContainerSpec, n: DeviceNodeSpec): Promise<string> {
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    await mkdir(this.dir(spec.name), { recursive: true, mode: 0o700 });
    await openDoor(this.dir(spec.name), containerRoot(spec));
    const ids = spec.privileged ? { uid: n.uid, gid: n.gid } : { uid: toHost(spec.idmap ?? [], "u", n.uid), gid: toHost(spec.idmap ?? [], "g", n.gid) };
    if (ids.uid === undefined || ids.gid === undefined)
      throw new InstanceDriverError(`device ${n.device}: owner ${n.uid}:${n.gid} is not mapped in container ${spec.name}`);
    const file = this.file(spec.name, n);
    const tmp = `${file}.new`;
    await rm(tmp, { force: true });
    const args = ["mknod", tmp, n.type, String(n.major), String(n.minor), n.mode.toString(8), String(ids.uid), String(ids.gid)];
    const r = await run(this.helper(), args, { allowFail: true });
    if (r.code !== 0) throw new InstanceDriverError(`device ${n.device}: cannot make its node: ${r.stderr.trim()}`);
    await rename(tmp, file);
    return file;
  }

  async remove(name: string, n: DeviceNodeSpec): Promise<void> {
    await rm(this.file(name, n), { force: true });
  }

  async removeAll(name: string): Promise<void> {
    await rm(this.dir(name), { recursive: true, force: true });
  }
}
