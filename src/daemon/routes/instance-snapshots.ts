import { badRequest, preconditionFailed } from "../../api/errors.js";
import { etagOf } from "../../api/etag.js";
import type { InstanceSnapshotPost, InstanceSnapshotsPost } from "../../api/instance.js";
import type { OperationManager } from "../../core/operations.js";
import type { InstanceService } from "../../instances/service.js";
import { snapshotToApi, snapshotUrl } from "../../instances/snapshots/record.js";
import type { SnapshotService } from "../../instances/snapshots/service.js";
import { ifMatch, recursion, sync, type Request, type Route } from "../route.js";
import { instanceTask } from "./instance-operation.js";

export interface SnapshotRouteDeps {
  instances: InstanceService;
  snapshots: SnapshotService;
  operations: OperationManager;
}

/**
 * /1.0/instances/<n>/snapshots and /1.0/instances/<n>/snapshots/<s>, LXD 5.0's shapes. Bad
 * input is refused on the request; changes run as operations, as LXD's do.
 */
export function instanceSnapshotRoutes(deps: SnapshotRouteDeps): Route[] {
  const { instances, snapshots, operations } = deps;
  const inst = (req: Request) => req.params.name!;
  const snap = (req: Request) => req.params.snapshot!;
  const task = (req: Request, description: string, work: (signal: AbortSignal) => Promise<unknown>) =>
    instanceTask(operations, req.project, inst(req), description, work);

  async function view(req: Request) {
    const r = await instances.record(req.project, inst(req));
    const s = await snapshots.get(req.project, inst(req), snap(req));
    return snapshotToApi(s, await instances.layers(r));
  }

  async function update(req: Request, mode: "put" | "patch") {
    const body = (req.body ?? {}) as { expires_at?: unknown };
    const current = await snapshots.get(req.project, inst(req), snap(req));
    const etag = ifMatch(req);
    if (etag && etag !== etagOf({ expires_at: current.expires_at })) throw preconditionFailed(`Snapshot "${current.name}" changed since it was read (ETag mismatch)`);
    // Checked on the request; the operation reports the stored change.
    // PUT replaces (no expires_at: never expires); PATCH leaves what it does not name.
    if (mode === "patch" && body.expires_at === undefined) return task(req, "Updating snapshot", async () => undefined);
    await snapshots.update(req.project, inst(req), snap(req), body);
    return task(req, "Updating snapshot", async () => undefined);
  }

  return [
    {
      method: "GET",
      path: "/1.0/instances/:name/snapshots",
      access: "trusted",
      handler: async (req) => {
        const r = await instances.record(req.project, inst(req));
        const list = await snapshots.list(req.project, inst(req));
        if (recursion(req) === 0) return sync(list.map((s) => snapshotUrl(req.project, s.instance, s.name)));
        const layers = await instances.layers(r);
        return sync(list.map((s) => snapshotToApi(s, layers)));
      },
    },
    {
      method: "POST",
      path: "/1.0/instances/:name/snapshots",
      access: "trusted",
      handler: async (req) => {
        const body = (req.body ?? {}) as InstanceSnapshotsPost & { reuse?: boolean };
        if (typeof body !== "object" || Array.isArray(body)) throw badRequest("The request body must be a snapshot object");
        if (body.stateful) throw badRequest("Stateful snapshots are not supported: Lodge has no CRIU checkpointing; take a stateless snapshot");
        await snapshots.check(req.project, inst(req), body);
        return instanceTask(operations, req.project, inst(req), "Snapshotting instance", (signal) => snapshots.create(req.project, inst(req), body, signal), { cancellable: true });
      },
    },
    {
      method: "GET",
      path: "/1.0/instances/:name/snapshots/:snapshot",
      access: "trusted",
      handler: async (req) => {
        const v = await view(req);
        return sync(v, { etag: etagOf({ expires_at: v.expires_at }) });
      },
    },
    { method: "PUT", path: "/1.0/instances/:name/snapshots/:snapshot", access: "trusted", handler: (req) => update(req, "put") },
    { method: "PATCH", path: "/1.0/instances/:name/snapshots/:snapshot", access: "trusted", handler: (req) => update(req, "patch") },
    {
      method: "POST",
      path: "/1.0/instances/:name/snapshots/:snapshot",
      access: "trusted",
      handler: async (req) => {
        const body = (req.body ?? {}) as InstanceSnapshotPost;
        if (body.migration) throw badRequest("Migrating snapshots is not supported; copy the snapshot into an instance with `lxc copy c1/snap0 c2`");
        await snapshots.get(req.project, inst(req), snap(req));
        if (typeof body.name !== "string" || !body.name) throw badRequest("A new snapshot name is required");
        return task(req, "Renaming snapshot", () => snapshots.rename(req.project, inst(req), snap(req), body.name));
      },
    },
    {
      method: "DELETE",
      path: "/1.0/instances/:name/snapshots/:snapshot",
      access: "trusted",
      handler: async (req) => {
        await snapshots.get(req.project, inst(req), snap(req));
        return task(req, "Deleting snapshot", () => snapshots.delete(req.project, inst(req), snap(req)));
      },
    },
  ];
}
