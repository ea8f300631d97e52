import { lstat, mkdir, open, chown } from "node:fs/promises";
import { constants } from "node:fs";
import { dirname, join, relative } from "node:path";
import { badRequest, isApiError } from "../api/errors.js";
import type { InstanceState as WireState, StateAction } from "../api/instance.js";
import { StatusCode } from "../api/response.js";
import type { EventHub } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import { Revert } from "../core/revert.js";
import type { StorageService } from "../storage/service.js";
import type { DocumentStore } from "../state/store.js";
import { fileKind } from "../sys/beneath.js";
import { idmapFromJson, idmapToJson, toHost } from "../sys/idmap.js";
import type { TemplateTrigger } from "../images/metadata.js";
import type { InstanceState, InstanceStatus } from "./driver.js";
import type { InstanceEngines } from "./drivers/engines.js";
import { hostEndKind, withNicVolatile, withoutHostNames } from "./devices/nic.js";
import { expandConfig, expandDevices, rootDisk } from "./expand.js";
import type { ProfileLayer } from "../profiles/record.js";
import { hostName, instanceKey, instanceUrl, type InstanceRecord } from "./record.js";
import { diffRunConfigs, isEmptyDiff } from "./runconfig.js";
import { LOCK_TIMEOUT_MS, type InstanceService, type LiveLayers } from "./service.js";
import type { ContainerSpecs } from "./spec.js";
import { renderTemplates, type RenderedTemplate } from "./templates.js";

export interface LifecycleDeps {
  store: DocumentStore;
  storage: StorageService;
  driver: InstanceEngines;
  instances: InstanceService;
  specs: ContainerSpecs;
  events: EventHub;
  log: Logger;
  /** Watches started instances for a stop from inside (ephemeral.ts); closed at host shutdown. */
  stops?: { watch(r: InstanceRecord): void; close(): Promise<void> };
  /** Readies what the instance's NICs need first (its networks' static DHCP hosts and names). */
  beforeStart?: (r: InstanceRecord) => Promise<void>;
}

const STATUS_CODES: Record<InstanceStatus, number> = {
  Running: StatusCode.Running,
  Stopped: StatusCode.Stopped,
  Frozen: StatusCode.Frozen,
  Error: StatusCode.Error,
};

export function statusOf(s: InstanceStatus): { status: string; status_code: number } {
  return { status: s, status_code: STATUS_CODES[s] };
}

/** Start, stop, restart, freeze and unfreeze; state; live limits. */
export class InstanceLifecycle {
  constructor(private readonly d: LifecycleDeps) {}

  /** Status and pid only (cheap: for lists and checks). */
  status(r: InstanceRecord): Promise<{ status: InstanceStatus; pid: number }> {
    return this.d.driver.status(hostName(r.project, r.name));
  }

  async state(r: InstanceRecord): Promise<InstanceState> {
    return this.d.driver.state(hostName(r.project, r.name));
  }

  /** The wire form of GET .../state; `layers` when the caller has the instance's profiles already. */
  async wireState(r: InstanceRecord, layers?: readonly ProfileLayer[]): Promise<WireState> {
    const [s, disk] = await Promise.all([this.state(r), this.diskState(r, layers)]);
    // As LXD: a frozen instance still shows its interfaces; a stopped one has none (null).
    const live = s.status === "Running" || s.status === "Frozen";
    const network: WireState["network"] = {};
    for (const [name, n] of Object.entries(s.network)) {
      network[name] = {
        addresses: n.addresses.map((a) => ({ family: a.family, address: a.address, netmask: a.netmask, scope: a.scope })),
        counters: n.counters,
        hwaddr: n.hwaddr,
        host_name: n.host_name,
        mtu: n.mtu,
        state: n.state,
        type: n.type,
      };
    }
    return {
      ...statusOf(s.status),
      pid: s.pid,
      processes: s.processes,
      cpu: { usage: s.cpu.usage_ns },
      memory: { usage: s.memory.usage, usage_peak: s.memory.usage_peak, swap_usage: s.memory.swap_usage, swap_usage_peak: 0 },
      disk,
      network: live ? network : null,
    };
  }

  /** The root disk's usage, by its device name, where the pool's driver can tell cheaply. */
  private async diskState(r: InstanceRecord, layers?: readonly ProfileLayer[]): Promise<WireState["disk"]> {
    const root = rootDisk(expandDevices(r, layers ?? (await this.d.instances.layers(r))));
    const usage = await this.d.storage.instanceUsage(r.pool, r.project, r.name, r.type).catch(() => undefined);
    return root && usage !== undefined ? { [root.name]: { usage } } : {};
  }

  async change(project: string, name: string, action: StateAction, opts: { force?: boolean; timeout?: number }): Promise<void> {
    await this.d.instances.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const r = await this.d.instances.record(project, name);
      const host = hostName(project, name);
      const status = (await this.d.driver.status(host)).status;
      const timeoutMs = opts.timeout !== undefined && opts.timeout >= 0 ? opts.timeout * 1000 : undefined;
      switch (action) {
        case "start":
          // LXD's words (clients and scripts match them); a frozen instance counts as running there.
          if (status === "Running" || status === "Frozen") throw badRequest("The instance is already running");
          await this.start(r);
          return this.d.events.lifecycle("instance-started", instanceUrl(project, name), {}, project);
        case "stop":
          if (status === "Stopped") throw badRequest("The instance is already stopped");
          await this.d.driver.stop(host, { force: opts.force, timeoutMs });
          await this.setPower(r, "STOPPED");
          this.d.events.lifecycle(opts.force ? "instance-stopped" : "instance-shutdown", instanceUrl(project, name), {}, project);
          // An ephemeral instance goes with its stop, as in LXD (a restart keeps it: not this path).
          if (r.ephemeral) {
            await this.d.instances.remove(r);
            this.d.events.lifecycle("instance-deleted", instanceUrl(project, name), {}, project);
          }
          return;
        case "restart":
          if (status !== "Stopped") await this.d.driver.stop(host, { force: opts.force, timeoutMs });
          await this.start(r);
          return this.d.events.lifecycle("instance-restarted", instanceUrl(project, name), {}, project);
        case "freeze":
          if (status === "Frozen") throw badRequest("The container is already frozen");
          if (status !== "Running") throw badRequest("The container isn't running");
          await this.d.driver.freeze(host);
          return this.d.events.lifecycle("instance-paused", instanceUrl(project, name), {}, project);
        case "unfreeze":
          if (status === "Running") throw badRequest("The container is already running");
          if (status !== "Frozen") throw badRequest("The container isn't running");
          await this.d.driver.unfreeze(host);
          return this.d.events.lifecycle("instance-resumed", instanceUrl(project, name), {}, project);
        default:
          throw badRequest(`Unknown action "${String(action)}": use start, stop, restart, freeze or unfreeze`);
      }
    });
  }

  /** Starts a stopped instance: pending templates first, then the driver; records the outcome. */
  private async start(r: InstanceRecord): Promise<void> {
    // Its profiles are read once for the whole start (NICs, templates, spec).
    const layers = await this.d.instances.layers(r);
    // The NICs' host-side names (and MACs of records made before they were kept), stored below.
    r = { ...r, config: withNicVolatile(r.config, expandDevices(r, layers), { running: true, kind: hostEndKind(r.type) }) };
    const volume = await this.d.storage.instancePath(r.pool, r.project, r.name, r.type);
    const pending = r.config["volatile.apply_template"] as TemplateTrigger | undefined;
    const config = expandConfig(r, layers);
    if (this.d.driver.capabilitiesOf(r.type).hostTemplates)
      for (const trigger of pending ? [pending, "start" as const] : ["start" as const]) await this.applyTemplates(r, volume, trigger, config);
    const [spec] = await Promise.all([this.d.specs.build(r, volume, { layers }), this.d.beforeStart?.(r)]);
    const result = await this.d.driver.start(spec);
    this.d.stops?.watch(r);
    const stored: Record<string, string> = { ...r.config, "volatile.last_state.power": "RUNNING" };
    delete stored["volatile.apply_template"];
    if (stored["volatile.idmap.next"]) {
      stored["volatile.last_state.idmap"] = idmapToJson(result.rootfsIdmap ?? []);
      stored["volatile.idmap.current"] = stored["volatile.idmap.next"];
    }
    await this.d.store.put(instanceKey(r.project, r.name), { ...r, config: stored, last_used_at: new Date().toISOString() });
  }

  /**
   * Writes the image templates for a trigger into the stopped instance's rootfs. The rootfs is
   * not in use, so nothing can swap a path under us; every component is checked not to be a
   * symlink, so a template can never be written outside the rootfs.
   */
  private async applyTemplates(r: InstanceRecord, volume: string, trigger: TemplateTrigger, config: Record<string, string>): Promise<void> {
    const { files, skipped } = await renderTemplates(volume, {
      trigger,
      name: r.name,
      type: r.type,
      architecture: r.architecture,
      config,
      properties: Object.fromEntries(Object.entries(r.config).filter(([k]) => k.startsWith("image.")).map(([k, v]) => [k.slice(6), v])),
    });
    for (const path of skipped) this.d.log.warn("image template uses control blocks; not applied", { instance: r.name, path });
    const map = idmapFromJson(r.config["volatile.last_state.idmap"] ?? "");
    const owner = { uid: toHost(map, "u", 0) ?? 0, gid: toHost(map, "g", 0) ?? 0 };
    for (const f of files) await writeInRootfs(join(volume, "rootfs"), f, owner);
  }

  /** An instance that stopped by itself (seen by the stop watch): recorded as stopped. */
  async noteStopped(r: InstanceRecord): Promise<void> {
    await this.setPower(r, "STOPPED");
  }

  private async setPower(r: InstanceRecord, power: "RUNNING" | "STOPPED"): Promise<void> {
    await this.d.store.txn(async (tx) => {
      const cur = await tx.get<InstanceRecord>(instanceKey(r.project, r.name));
      if (!cur) return;
      // Stopped, its NICs' host-side interfaces are gone, and so are their names (as LXD).
      const config = power === "STOPPED" ? withoutHostNames(cur.value.config) : cur.value.config;
      tx.put(cur.key, { ...cur.value, config: { ...config, "volatile.last_state.power": power } });
    });
  }

  /**
   * At daemon start: starts the instances that should run, as LXD does: boot.autostart=true,
   * or boot.autostart unset and running when last seen (the host rebooted under it). Higher
   * boot.autostart.priority first; boot.autostart.delay seconds after each.
   */
  async autostart(signal?: AbortSignal): Promise<string[]> {
    const all = await this.d.instances.records();
    const wanted = all.filter((r) => {
      const v = r.config["boot.autostart"];
      return v !== undefined && v !== "" ? /^(true|1|yes|on)$/i.test(v) : r.config["volatile.last_state.power"] === "RUNNING";
    });
    wanted.sort((a, b) => Number(b.config["boot.autostart.priority"] ?? 0) - Number(a.config["boot.autostart.priority"] ?? 0));
    const started: string[] = [];
    for (const r of wanted) {
      if (signal?.aborted) break;
      if ((await this.status(r)).status !== "Stopped") continue;
      try {
        await this.change(r.project, r.name, "start", {});
        started.push(`${r.project}/${r.name}`);
        this.d.log.info("autostarted instance", { project: r.project, instance: r.name });
      } catch (e) {
        this.d.log.error("autostart failed", { project: r.project, instance: r.name, err: (e as Error).message });
      }
      const delay = Number(r.config["boot.autostart.delay"] ?? 0);
      if (delay > 0) await new Promise((res) => setTimeout(res, delay * 1000));
    }
    return started;
  }

  /**
   * The host is going down (`lodged shutdown`): stops every running instance, as LXD does —
   * higher boot.stop.priority first (each priority's instances together), each given
   * boot.host_shutdown_timeout seconds (default 30, at most `maxTimeoutS`) to stop cleanly
   * before it is killed. volatile.last_state.power stays RUNNING, so they start again with the
   * daemon. Returns the instances stopped, in order.
   */
  async shutdownAll(maxTimeoutS?: number): Promise<string[]> {
    // These stops are the host's, not the instances' own: nothing is deleted or recorded for them.
    await this.d.stops?.close();
    const running: InstanceRecord[] = [];
    for (const r of await this.d.instances.records()) if ((await this.status(r)).status !== "Stopped") running.push(r);
    const priority = (r: InstanceRecord) => Number(r.config["boot.stop.priority"] ?? 0) || 0;
    const groups = [...new Set(running.map(priority))].sort((a, b) => b - a);
    const stopped: string[] = [];
    for (const p of groups) {
      await Promise.all(
        running
          .filter((r) => priority(r) === p)
          .map((r) =>
            this.d.instances.locks.with(`${r.project}/${r.name}`, `Instance "${r.name}"`, LOCK_TIMEOUT_MS, async () => {
              const wanted = Number(r.config["boot.host_shutdown_timeout"] ?? 30);
              const timeoutS = Math.min(Number.isFinite(wanted) && wanted >= 0 ? wanted : 30, maxTimeoutS ?? Infinity);
              this.d.log.info("stopping instance for host shutdown", { project: r.project, instance: r.name, priority: p, timeout: timeoutS });
              await this.d.driver.stop(hostName(r.project, r.name), { timeoutMs: timeoutS * 1000 }).catch((e: Error) =>
                this.d.log.error("stop at host shutdown failed", { project: r.project, instance: r.name, err: e.message }),
              );
              stopped.push(`${r.project}/${r.name}`);
              this.d.events.lifecycle("instance-shutdown", instanceUrl(r.project, r.name), {}, r.project);
            }).catch((e: Error) => this.d.log.error("instance not stopped at host shutdown", { project: r.project, instance: r.name, err: e.message })),
          ),
      );
    }
    return stopped;
  }

  /**
   * Applies a config change to a running (or frozen) instance before it is stored: devices
   * hot-plugged (mounts, device nodes, device rules, NICs) and limits, from the run-config of
   * `before` to that of `after`. All or nothing: on failure what was done is undone and the
   * error (400) names what failed. Returns the undo, for when storing the record then fails.
   * Changes the driver cannot apply live wait for the next start (and are logged). The caller
   * holds the instance's lock. `layers`: its profiles before and after, when a profile changes.
   */
  async applyLive(before: InstanceRecord, after: InstanceRecord, layers?: LiveLayers): Promise<(() => Promise<void>) | undefined> {
    const host = hostName(after.project, after.name);
    const status = (await this.d.driver.status(host)).status;
    if (status !== "Running" && status !== "Frozen") return undefined;
    const volume = await this.d.storage.instancePath(after.pool, after.project, after.name, after.type);
    // What runs may include devices whose source has gone since: left out, not an error.
    const [from, to] = await Promise.all([
      this.d.specs.build(before, volume, { lenient: true, layers: layers?.before }),
      this.d.specs.build(after, volume, { layers: layers?.after }),
    ]);
    const diff = diffRunConfigs(from.run, to.run);
    if (isEmptyDiff(diff)) return undefined;
    const undo = new Revert();
    try {
      const { deferred } = await this.d.driver.hotplug(to, from.run);
      undo.add(() => this.d.driver.hotplug(from, to.run));
      if (diff.limitsChanged) {
        await this.d.driver.applyLimits(host, to.run.limits);
        undo.add(() => this.d.driver.applyLimits(host, from.run.limits));
      }
      if (deferred.length) this.d.log.info("changes applied at the next start", { instance: after.name, project: after.project, parts: deferred.join(", ") });
      const done = undo.release();
      return async () => {
        const errors = await done.run();
        if (errors.length) throw errors[0];
      };
    } catch (e) {
      await undo.run();
      if (isApiError(e)) throw e;
      throw badRequest(`Failed to update running instance "${after.name}": ${(e as Error).message}`);
    }
  }
}

async function writeInRootfs(rootfs: string, f: RenderedTemplate, owner: { uid: number; gid: number }): Promise<void> {
  const target = join(rootfs, f.path);
  const rel = relative(rootfs, target);
  if (rel.startsWith("..")) throw badRequest(`Template path "${f.path}" leaves the rootfs`);
  let dir = rootfs;
  for (const part of dirname(rel).split("/").filter((p) => p && p !== ".")) {
    dir = join(dir, part);
    const st = await lstat(dir).catch(() => undefined);
    if (!st) {
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, owner.uid, owner.gid);
    } else if (!st.isDirectory()) throw badRequest(`Template path "${f.path}" goes through a non-directory`);
  }
  // What the image or the container left at the target may be anything. Only a regular file
  // (or nothing) is written: a FIFO would block the open forever and a device node would take
  // the write to a host device. O_NONBLOCK keeps the open from waiting on a FIFO, whatever
  // lstat saw; fstat judges what was actually opened.
  const notRegular = (kind: string) => badRequest(`Cannot write image template "${f.path}": the instance's file is not a regular file (it is ${kind})`);
  const seen = await lstat(target).catch(() => undefined);
  if (seen && !seen.isFile()) throw notRegular(fileKind(seen));
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
  const fh = await open(target, flags, f.mode).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ELOOP") throw notRegular("a symbolic link");
    if (e.code === "ENXIO") throw notRegular("a FIFO");
    if (e.code === "EISDIR") throw notRegular("a directory");
    throw e;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegular(fileKind(st));
    await fh.writeFile(f.content);
    await fh.chown(owner.uid, owner.gid);
  } finally {
    await fh.close();
  }
}
