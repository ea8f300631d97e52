/**
 * Hot-plug: brings a running container from one run-config to another without a restart, as
 * LXD does for disk, unix-char and unix-block devices.
 *
 * - A mount goes in as a detached clone of the host source (open_tree), made read-only or
 *   idmapped on the host, then attached inside the container's mount namespace (move_mount):
 *   the native helper (native/hotplug) does it, since Node can neither setns(2) nor use the new
 *   mount API. A read-only one has its flag locked first (the helper's lock_tree), so container
 *   root cannot remount it read-write. Out: a lazy unmount inside.
 * - A device node is made on the host (devnodes.ts) and mounted in the same way; out: unmounted
 *   and its mount point removed inside, then the host node removed.
 * - Device access rules are written to the container's devices cgroup (v1 devices.allow and
 *   devices.deny), found from its init; a rule of the default list is never denied.
 * - Bridged NICs: a veth pair, one end into the container (nic-hotplug.ts); out: deleted.
 *
 * Removals go first (a changed device is removed, then added). Every step registers its undo,
 * so when one fails the container is left as it was and the error says which device failed.
 */
import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Revert } from "../../../core/revert.js";
import { CommandTimeoutError, formatSeconds, run } from "../../../sys/exec.js";
import type { Cgroup } from "../../../sys/cgroup.js";
import { InstanceDriverError, type ContainerSpec, type HotplugResult } from "../../driver.js";
import type { DeviceNodeSpec, DeviceRule, MountSpec, RunConfigDiff } from "../../runconfig.js";
import { DEVICE_ALLOW, mountsIdmappable, type RootfsOwnership } from "./config.js";
import type { DeviceNodes } from "./devnodes.js";
import { addNic, removeNic } from "./nic-hotplug.js";

export interface HotplugTarget {
  /** The container as it is to be (its run-config is the goal). */
  spec: ContainerSpec;
  /** Host pid of its init. */
  init: number;
  cgroup: Cgroup;
  ownership: RootfsOwnership;
  nodes: DeviceNodes;
  helper: string;
}

/** Applies a run-config diff to a running container; all or nothing. */
export async function applyHotplug(t: HotplugTarget, diff: RunConfigDiff): Promise<HotplugResult> {
  const undo = new Revert();
  const goneNodes: DeviceNodeSpec[] = [];
  const deferred = [...diff.other];
  try {
    for (const m of diff.mounts.remove) {
      await unmount(t, m.target, false);
      undo.add(() => mount(t, m));
    }
    for (const n of diff.deviceNodes.remove) {
      await unmount(t, n.path, true);
      undo.add(async () => mountNode(t, n, await t.nodes.create(t.spec, n)));
      goneNodes.push(n);
    }
    const rules = new Set(t.spec.run.deviceRules.filter((r) => r.allow).map((r) => r.rule));
    const deny = diff.deviceRules.remove.filter((r) => r.allow && !rules.has(r.rule) && !DEVICE_ALLOW.includes(r.rule));
    const allow = diff.deviceRules.add.filter((r) => r.allow);
    const refused = [...diff.deviceRules.add, ...diff.deviceRules.remove].filter((r) => !r.allow);
    if (refused.length) throw new InstanceDriverError(`deny rules (${refused.map((r) => r.rule).join(", ")}) cannot change while the container runs`);
    if (t.cgroup.dir("devices")?.version !== 1) {
      // cgroup2 has no devices files (liblxc loads an eBPF program at start): a device that
      // needs access cannot be added live; a withdrawn access lasts until the next start.
      if (allow.length) throw new InstanceDriverError(`device access (${allow.map((r) => r.rule).join(", ")}) can only be granted live with the cgroup v1 devices controller; restart the container instead`);
      if (deny.length) deferred.push("deviceRules");
      deny.length = 0;
    }
    for (const r of deny) {
      await writeRule(t.cgroup, "deny", r);
      undo.add(() => writeRule(t.cgroup, "allow", r));
    }
    for (const r of allow) {
      await writeRule(t.cgroup, "allow", r);
      if (!DEVICE_ALLOW.includes(r.rule)) undo.add(() => writeRule(t.cgroup, "deny", r));
    }
    for (const n of diff.deviceNodes.add) {
      const file = await t.nodes.create(t.spec, n);
      undo.add(() => t.nodes.remove(t.spec.name, n));
      await mountNode(t, n, file);
      undo.add(() => unmount(t, n.path, true));
    }
    for (const m of diff.mounts.add) {
      await mount(t, m);
      undo.add(() => unmount(t, m.target, false));
    }
    for (const n of diff.nics.remove) {
      await removeNic(t.init, n);
      undo.add(() => addNic(t.init, n));
    }
    for (const n of diff.nics.add) {
      await addNic(t.init, n);
      undo.add(() => removeNic(t.init, n));
    }
    undo.commit();
  } finally {
    await undo.run();
  }
  // The nodes of removed devices, unless a changed device made its node anew.
  const kept = new Set(t.spec.run.deviceNodes.map((n) => n.device));
  for (const n of goneNodes) if (!kept.has(n.device)) await t.nodes.remove(t.spec.name, n).catch(() => undefined);
  return { deferred };
}

/**
 * How long one lodge-hotplug call may take. It resolves its target inside the container, where
 * the container's root controls the filesystems (FUSE is bound in): one that never answers would
 * hold the helper, and the instance's lock, forever. A healthy mount or unmount takes
 * milliseconds; 10 s leaves room for a loaded host and still ends well before the lock's own
 * wait (LOCK_TIMEOUT_MS, 60 s) runs out for the next caller, reverts included.
 */
export const HOTPLUG_HELPER_TIMEOUT_MS = 10_000;

async function helper(t: HotplugTarget, args: string[], what: string): Promise<void> {
  const r = await run(t.helper, args, { allowFail: true, timeoutMs: HOTPLUG_HELPER_TIMEOUT_MS }).catch((e: Error) => {
    if (!(e instanceof CommandTimeoutError)) throw e;
    throw new InstanceDriverError(
      `${what}: the hot-plug timed out after ${formatSeconds(e.timeoutMs)} (the helper was killed); a filesystem inside the container may not be answering`,
    );
  });
  if (r.code !== 0) throw new InstanceDriverError(`${what}: ${r.stderr.trim() || `exit ${r.code}`}`);
}

async function mount(t: HotplugTarget, m: MountSpec): Promise<void> {
  const flags = ["--pid", String(t.init)];
  if (m.readonly) flags.push("--readonly");
  if (m.optional) flags.push("--optional");
  if (m.recursive) flags.push("--recursive");
  if (m.propagation) flags.push("--propagation", m.propagation);
  if (m.shift) {
    if (!mountsIdmappable(t.ownership))
      throw new InstanceDriverError(`mount ${m.target}: shift needs idmapped mounts, which ${t.ownership === "privileged" ? "a privileged container does not use" : "this host's filesystem lacks"}`);
    flags.push("--idmap");
  }
  await helper(t, ["mount", ...flags, m.source, m.target], `cannot mount ${m.source} at ${m.target}`);
}

async function mountNode(t: HotplugTarget, n: DeviceNodeSpec, file: string): Promise<void> {
  await helper(t, ["mount", "--pid", String(t.init), file, n.path], `device ${n.device}: cannot add its node at ${n.path}`);
}

async function unmount(t: HotplugTarget, target: string, remove: boolean): Promise<void> {
  await helper(t, ["umount", "--pid", String(t.init), ...(remove ? ["--remove"] : []), target], `cannot unmount ${target}`);
}

/**
 * One rule into the container's v1 devices cgroup. An allow reaches only the cgroup it is
 * written to, so it goes to the container's cgroup and then each cgroup below it (parents
 * first); a deny propagates down by itself.
 */
async function writeRule(cg: Cgroup, kind: "allow" | "deny", r: DeviceRule): Promise<void> {
  const d = cg.dir("devices");
  if (d?.version !== 1) throw new InstanceDriverError("the cgroup v1 devices controller is gone");
  const top = containerCgroup(d.dir);
  const dirs = kind === "allow" ? await cgroupTree(top) : [top];
  for (const dir of dirs) {
    await writeFile(path.join(dir, `devices.${kind}`), r.rule).catch((e: Error) => {
      throw new InstanceDriverError(`cannot ${kind} ${r.rule} in ${dir}: ${e.message}`);
    });
  }
}

/** liblxc's payload cgroup (lxc.payload.NAME), even when init sits in a cgroup below it. */
export function containerCgroup(initDir: string): string {
  const parts = initDir.split("/");
  const i = parts.findIndex((p) => p.startsWith("lxc.payload."));
  return i >= 0 ? parts.slice(0, i + 1).join("/") : initDir;
}

async function cgroupTree(dir: string): Promise<string[]> {
  const out = [dir];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) out.push(...(await cgroupTree(path.join(dir, e.name))));
  return out;
}
