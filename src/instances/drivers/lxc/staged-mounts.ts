/**
 * Read-only disks at start. liblxc makes a container's mounts from inside its user namespace,
 * where nothing locks a read-only flag: container root could remount such a disk read-write
 * and write the host's files (as their real owners with shift=true). So each read-only disk
 * is first mounted on the host, read-only (and idmapped for shift=true), at a staging path of
 * the container's (MOUNTS/NAME/N, behind a door for its root alone), and liblxc binds that.
 * The container's mount namespace is a copy of the host's made into its user namespace, which
 * locks the staged mount's flags, and a bind keeps them. Once lxc-start is back, liblxc is done
 * with the staging mounts and they go. The native helper (native/hotplug) mounts and unmounts:
 * Node has neither the new mount API nor umount(2).
 *
 * Hot-plugged read-only disks get their locks in the helper itself (lock_tree there).
 */
import { mkdir, readdir, rmdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "../../../sys/exec.js";
import { lxcIdmapLines } from "../../../sys/idmap.js";
import { InstanceDriverError, type ContainerSpec } from "../../driver.js";
import type { MountSpec } from "../../runconfig.js";
import { mountsIdmappable, type RootfsOwnership } from "./config.js";
import { containerRoot, openDoor, restrictEntries } from "./host-checks.js";

/** How long the helper may take to mount or unmount (it never touches the container's files). */
const HELPER_TIMEOUT_MS = 30_000;

export interface Staged {
  /** The spec to start with: staged mounts bind from their staging path. */
  spec: ContainerSpec;
  /** Removes the staging mounts (after lxc-start, whatever its outcome). */
  release(): Promise<void>;
}

export class StagedMounts {
  constructor(
    /** Parent of the per-container staging directories. */
    readonly root: string,
    private readonly helper: () => string,
  ) {}

  dir(name: string): string {
    return path.join(this.root, name);
  }

  /** Stages the spec's read-only mounts; the spec as it is when there are none. */
  async stage(spec: ContainerSpec, ownership: RootfsOwnership): Promise<Staged> {
    const mounts = [...spec.run.mounts];
    // A privileged container's root may remount anything: nothing to lock. A shift the host
    // cannot do is left to the config's own error.
    const wanted = mounts.filter((m) => m.readonly && ownership !== "privileged" && (!m.shift || mountsIdmappable(ownership)));
    if (!wanted.length) return { spec, release: async () => {} };
    await this.clear(spec.name);
    const dir = this.dir(spec.name);
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    await mkdir(dir, { mode: 0o700 });
    await openDoor(dir, containerRoot(spec));
    const release = () => this.clear(spec.name);
    try {
      for (const [i, m] of mounts.entries()) {
        if (!wanted.includes(m)) continue;
        const st = await stat(m.source).catch(() => undefined);
        if (!st) continue; // missing: the config's rule applies (skipped when optional, else an error)
        const at = path.join(dir, String(i));
        if (st.isDirectory()) await mkdir(at, { mode: 0o700 });
        else await writeFile(at, "", { mode: 0o600, flag: "wx" });
        await this.run(["stage", ...stageFlags(m, spec), m.source, at], `disk ${m.target}: cannot mount ${m.source} read-only`);
        mounts[i] = { ...m, source: at, shift: false };
      }
    } catch (e) {
      await release().catch(() => undefined);
      throw e;
    }
    return { spec: { ...spec, run: { ...spec.run, mounts } }, release };
  }

  /** Unmounts and removes a container's staging directory (left over by a crash, or done with). */
  async clear(name: string): Promise<void> {
    const dir = this.dir(name);
    const entries = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    if (!entries) return;
    if (entries.length) await this.run(["unstage", ...entries.map((e) => path.join(dir, e))], `cannot remove the staging mounts of ${name}`);
    await rmdir(dir);
  }

  /** At daemon start: what a crash between a stage and its release left. */
  async init(): Promise<void> {
    await restrictEntries(this.root);
    for (const name of await readdir(this.root)) await this.clear(name);
  }

  private async run(args: string[], what: string): Promise<void> {
    const r = await run(this.helper(), args, { allowFail: true, timeoutMs: HELPER_TIMEOUT_MS });
    if (r.code !== 0) throw new InstanceDriverError(`${what}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
}

function stageFlags(m: MountSpec, spec: ContainerSpec): string[] {
  const flags = ["--readonly"];
  if (m.recursive) flags.push("--recursive");
  // A propagation asked for is set by liblxc on its bind, which must then share the source's peers.
  if (m.propagation) flags.push("--keep-peers");
  if (m.shift) for (const line of lxcIdmapLines(spec.idmap ?? [])) flags.push("--map", line);
  return flags;
}
