import type { InstancePut, InstancesPost } from "../../api/instance.js";
import { badRequest } from "../../api/errors.js";
import { matchFilter, parseFilter } from "../../api/filter.js";
import type { InstanceLifecycle } from "../../instances/lifecycle.js";
import { statusOf } from "../../instances/lifecycle.js";
import { instanceUrl, toApi, type InstanceRecord } from "../../instances/record.js";
import type { InstanceService } from "../../instances/service.js";
import type { ProfileLayer } from "../../profiles/record.js";
import type { OperationManager } from "../../core/operations.js";
import type { Readable } from "node:stream";
import { flag, ifMatch, recursion, sync, type Reply, type Request, type Route } from "../route.js";
import { instanceTask } from "./instance-operation.js";
import type { OperationContext } from "../../core/operations.js";
import { ownSnapshotName, type SnapshotService } from "../../instances/snapshots/service.js";
import type { InstanceCopier } from "../../instances/copy.js";
import type { PoolMover } from "../../instances/move.js";
import { snapshotToApi, type SnapshotRecord } from "../../instances/snapshots/record.js";

export interface InstanceRouteDeps {
  instances: InstanceService;
  lifecycle: InstanceLifecycle;
  operations: OperationManager;
  snapshots: SnapshotService;
  copier: InstanceCopier;
  mover: PoolMover;
  /** POST /1.0/instances with a backup tarball as the body (`lxc import`). */
  importBackup?: (req: Request, body: Readable) => Promise<Reply>;
  /** An instance's backups follow it when it is renamed and go when it is deleted. */
  backups?: {
    renameAll(project: string, name: string, newName: string): Promise<void>;
    deleteAll(project: string, name: string): Promise<void>;
    /** Every backup of a project (or of all), by "<project>/<instance>": one store read for a whole list. */
    byInstance(project?: string): Promise<Map<string, unknown[]>>;
  };
}

/** Instances whose views are gathered between two turns of the event loop. */
const LIST_BATCH = 16;

/** /1.0/instances and /1.0/instances/<name>: LXD 5.0's shapes (containers for now). */
export function instanceRoutes(deps: InstanceRouteDeps): Route[] {
  const { instances, lifecycle, operations, snapshots, copier, mover } = deps;
  const name = (req: Request) => req.params.name!;

  async function view(r: InstanceRecord, full: boolean, layers?: ProfileLayer[], snaps?: SnapshotRecord[], backups?: Map<string, unknown[]>) {
    layers ??= await instances.layers(r);
    if (!full) return toApi(r, statusOf((await lifecycle.status(r)).status), layers);
    const state = await lifecycle.wireState(r, layers);
    snaps ??= await snapshots.list(r.project, r.name);
    backups ??= await deps.backups?.byInstance(r.project);
    return { ...toApi(r, state, layers), state, snapshots: snaps.map((s) => snapshotToApi(s, layers)), backups: backups?.get(`${r.project}/${r.name}`) ?? [] };
  }

  async function list(req: Request) {
    const records = await instances.records(flag(req.query["all-projects"]) ? undefined : req.project);
    const depth = recursion(req);
    const filter = req.query.filter ? parseFilter(req.query.filter) : undefined;
    if (depth === 0 && !filter) return sync(records.map((r) => instanceUrl(r.project, r.name)));
    // The state of running instances is read synchronously (sys/small-file.ts): in batches,
    // with the event loop free between them, so a long list never holds other requests up long.
    // Profiles are read once per project for the whole list, not once per instance.
    const layersOf = await instances.layerResolver(records);
    // Snapshots and backups of the whole list in one read each, as profiles.
    const scope = flag(req.query["all-projects"]) ? undefined : req.project;
    const snaps = depth > 1 ? await snapshots.byInstance(scope) : undefined;
    const backups = depth > 1 ? await deps.backups?.byInstance(scope) : undefined;
    let views: Awaited<ReturnType<typeof view>>[] = [];
    for (let i = 0; i < records.length; i += LIST_BATCH) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      views.push(...(await Promise.all(records.slice(i, i + LIST_BATCH).map((r) => view(r, depth > 1, layersOf(r), snaps?.get(`${r.project}/${r.name}`) ?? [], backups)))));
    }
    if (filter) views = views.filter((v) => matchFilter(v, filter));
    return sync(depth === 0 ? views.map((v) => instanceUrl(v.project, v.name)) : views);
  }

  async function create(req: Request) {
    const stream = req.body as Readable | undefined;
    if (stream && typeof stream.pipe === "function") {
      if (!deps.importBackup) throw badRequest("Importing backups is not supported");
      return deps.importBackup(req, stream);
    }
    const body = (req.body ?? {}) as InstancesPost;
    if (typeof body !== "object" || Array.isArray(body)) throw badRequest("The request body must be an instance object");
    if (body.source?.type === "copy") {
      const copy = await copier.prepare(req.project, body);
      // Cancellable: the copy stops its tools and removes what it made.
      return instanceTask(operations, req.project, copy.record.name, copy.refresh ? "Refreshing instance" : "Creating instance", async (signal) => {
        await copier.copy(copy, signal);
        if (body.start && !copy.refresh) await lifecycle.change(req.project, copy.record.name, "start", {});
      }, { cancellable: true });
    }
    const prepared = await instances.prepare(req.project, body);
    return async_(req, "Creating instance", prepared.record.name, async (signal, ctx) => {
      await instances.create(prepared, signal, ctx);
      if (body.start) await lifecycle.change(req.project, prepared.record.name, "start", {});
    });
  }

  const async_ = (req: Request, description: string, n: string, work: (signal: AbortSignal, ctx: OperationContext) => Promise<unknown>) =>
    instanceTask(operations, req.project, n, description, work);

  return [
    { method: "GET", path: "/1.0/instances", access: "trusted", handler: list },
    { method: "POST", path: "/1.0/instances", access: "trusted", rawBody: "typed", handler: create },
    {
      method: "GET",
      path: "/1.0/instances/:name",
      access: "trusted",
      handler: async (req) => {
        const r = await instances.record(req.project, name(req));
        return sync(await view(r, recursion(req) > 0), { etag: instances.etag(r) });
      },
    },
    {
      method: "PUT",
      path: "/1.0/instances/:name",
      access: "trusted",
      handler: (req) => update(req, "put"),
    },
    {
      method: "PATCH",
      path: "/1.0/instances/:name",
      access: "trusted",
      handler: (req) => update(req, "patch"),
    },
    {
      method: "POST",
      path: "/1.0/instances/:name",
      access: "trusted",
      handler: async (req) => {
        const body = (req.body ?? {}) as { name?: unknown; migration?: boolean; pool?: unknown; project?: unknown; instance_only?: boolean; container_only?: boolean };
        if (body.project !== undefined && body.project !== "" && body.project !== req.project) throw badRequest("Moving instances between projects is not supported yet");
        if (body.pool !== undefined && body.pool !== "") return movePool(req, body.pool, body.name, !!(body.instance_only || body.container_only));
        if (body.migration) throw badRequest("Migration to another server is not supported yet");
        await instances.record(req.project, name(req));
        return async_(req, "Renaming instance", name(req), async () => {
          const renamed = await instances.rename(req.project, name(req), body.name);
          await deps.backups?.renameAll(req.project, name(req), renamed.name);
        });
      },
    },
    {
      method: "DELETE",
      path: "/1.0/instances/:name",
      access: "trusted",
      handler: async (req) => {
        const r = await instances.record(req.project, name(req));
        // Refused on the request itself, as LXD does, so a client learns at once and nothing runs
        // (the service checks again under the instance's lock). `lxc delete --force` stops first.
        if ((await lifecycle.status(r)).status !== "Stopped") throw badRequest("Instance is running");
        return async_(req, "Deleting instance", name(req), async () => {
          await instances.delete(req.project, name(req));
          await deps.backups?.deleteAll(req.project, name(req));
        });
      },
    },
  ];

  /**
   * POST {"pool": "p2", "migration": true} (`lxc move c1 -s p2`, LXD's instance_pool_move): the
   * stopped instance's volume moves to the pool; a new name in the same request renames it after.
   */
  async function movePool(req: Request, pool: unknown, newName: unknown, instanceOnly: boolean) {
    if (typeof pool !== "string") throw badRequest('"pool" must be a storage pool name');
    const n = name(req);
    const r = await instances.record(req.project, n);
    await mover.check(req.project, n, pool);
    if ((await lifecycle.status(r)).status !== "Stopped") throw badRequest(`Instance "${n}" must be stopped to be moved to another pool`);
    return async_(req, "Moving instance", n, async (signal) => {
      await mover.move(req.project, n, pool, { instanceOnly, signal });
      if (typeof newName === "string" && newName !== "" && newName !== n) await instances.rename(req.project, n, newName);
    });
  }

  /**
   * PUT {"restore": "snap0"}: a running instance is stopped, restored and started again, as
   * LXD does; a stopped one is restored and stays stopped.
   */
  async function restore(req: Request, snapName: string) {
    const r = await instances.record(req.project, name(req));
    const snap = ownSnapshotName(r.name, snapName);
    await snapshots.get(req.project, r.name, snap);
    return async_(req, "Restoring snapshot", r.name, async (signal) => {
      const running = (await lifecycle.status(r)).status !== "Stopped";
      // Stopping an ephemeral instance deletes it; there would be nothing left to restore.
      if (running && r.ephemeral) throw badRequest(`Instance "${r.name}" is ephemeral and running: a stop would delete it; unset ephemeral first`);
      if (running) await lifecycle.change(req.project, r.name, "stop", { force: true });
      await snapshots.restore(req.project, r.name, snap, signal);
      if (running) await lifecycle.change(req.project, r.name, "start", {});
    });
  }

  async function update(req: Request, mode: "put" | "patch") {
    const body = (req.body ?? {}) as Partial<InstancePut> & { restore?: string };
    if (body.restore !== undefined && body.restore !== "") return restore(req, String(body.restore));
    const etag = ifMatch(req);
    // Checked, applied to the running instance (devices hot-plugged, limits) and stored on the
    // request itself, so bad input or a change that cannot be applied is a 400 and changes
    // nothing; the operation then only reports the done update.
    await instances.update(req.project, name(req), body, mode, etag, (before, after) => lifecycle.applyLive(before, after));
    return async_(req, "Updating instance", name(req), async () => undefined);
  }
}
