import { badRequest } from "../../api/errors.js";
import type { StoragePoolPut, StoragePoolsPost, StorageVolumePost, StorageVolumePut, StorageVolumesPost } from "../../api/storage.js";
import type { OperationManager } from "../../core/operations.js";
import type { CustomVolumes } from "../../storage/custom-volumes.js";
import { poolUrl, type PoolService } from "../../storage/pools.js";
import { volumeUrl } from "../../storage/users.js";
import { async, empty, ifMatch, recursion, sync, type Request, type Route } from "../route.js";

export interface StorageRouteDeps {
  pools: PoolService;
  volumes: CustomVolumes;
  operations: OperationManager;
}

const TYPES = new Set(["custom", "container", "virtual-machine", "image"]);

/**
 * /1.0/storage-pools and their volumes: LXD 5.0's shapes. Pool changes and plain volume
 * changes are synchronous as in LXD; copies, moves and snapshots are operations.
 */
export function storageRoutes({ pools, volumes, operations }: StorageRouteDeps): Route[] {
  const pool = (req: Request) => req.params.pool!;
  const vol = (req: Request) => req.params.volume!;
  const snap = (req: Request) => req.params.snapshot!;
  const type = (req: Request) => {
    const t = req.params.type!;
    if (!TYPES.has(t)) throw badRequest(`Invalid storage volume type "${t}" (custom, container, virtual-machine or image)`);
    return t;
  };
  const custom = (req: Request) => {
    if (type(req) !== "custom") throw badRequest(`Only custom volumes can be changed directly (not "${type(req)}")`);
  };
  const body = <T>(req: Request): T => {
    const b = req.body ?? {};
    if (typeof b !== "object" || Array.isArray(b)) throw badRequest("The request body must be a JSON object");
    return b as T;
  };
  const op = (req: Request, description: string, resource: string, run: (signal: AbortSignal) => Promise<unknown>) =>
    async(
      operations.create({
        description,
        project: req.project,
        resources: { storage_volumes: [resource] },
        run: async (ctx) => {
          await run(ctx.signal);
        },
      }),
    );

  const listVolumes = async (req: Request, t?: string) => {
    const all = await volumes.list(pool(req), req.project, t);
    return sync(recursion(req) === 0 ? all.map((v) => volumeUrl(pool(req), v.type, v.name, v.project)) : all);
  };

  return [
    {
      method: "GET",
      path: "/1.0/storage-pools",
      access: "trusted",
      handler: async (req) => {
        const all = await pools.list();
        return sync(recursion(req) === 0 ? all.map((p) => poolUrl(p.name)) : all);
      },
    },
    {
      method: "POST",
      path: "/1.0/storage-pools",
      access: "trusted",
      handler: async (req) => {
        const p = await pools.create(body<StoragePoolsPost>(req));
        return sync({}, { status: 201, location: poolUrl(p.name) });
      },
    },
    {
      method: "GET",
      path: "/1.0/storage-pools/:pool",
      access: "trusted",
      handler: async (req) => {
        const { pool: p, etag } = await pools.get(pool(req));
        return sync(p, { etag });
      },
    },
    { method: "PUT", path: "/1.0/storage-pools/:pool", access: "trusted", handler: async (req) => (await pools.update(pool(req), body<StoragePoolPut>(req), "put", ifMatch(req)), empty()) },
    { method: "PATCH", path: "/1.0/storage-pools/:pool", access: "trusted", handler: async (req) => (await pools.update(pool(req), body<StoragePoolPut>(req), "patch", ifMatch(req)), empty()) },
    { method: "DELETE", path: "/1.0/storage-pools/:pool", access: "trusted", handler: async (req) => (await pools.delete(pool(req)), empty()) },
    { method: "GET", path: "/1.0/storage-pools/:pool/resources", access: "trusted", handler: async (req) => sync(await pools.resources(pool(req))) },

    { method: "GET", path: "/1.0/storage-pools/:pool/volumes", access: "trusted", handler: (req) => listVolumes(req) },
    { method: "GET", path: "/1.0/storage-pools/:pool/volumes/:type", access: "trusted", handler: (req) => listVolumes(req, type(req)) },
    ...(["/1.0/storage-pools/:pool/volumes", "/1.0/storage-pools/:pool/volumes/:type"] as const).map(
      (path): Route => ({
        method: "POST",
        path,
        access: "trusted",
        handler: async (req) => {
          const b = body<StorageVolumesPost>(req);
          if (req.params.type) custom(req);
          if (b.source?.type) return op(req, "Copying storage volume", volumeUrl(pool(req), "custom", String(b.name), req.project), (signal) => volumes.create(pool(req), req.project, b, signal));
          await volumes.create(pool(req), req.project, b);
          return sync({}, { status: 201, location: volumeUrl(pool(req), "custom", String(b.name), req.project) });
        },
      }),
    ),
    {
      method: "GET",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume",
      access: "trusted",
      handler: async (req) => {
        const { volume, etag } = await volumes.get(pool(req), req.project, type(req), vol(req));
        return sync(volume, { etag });
      },
    },
    {
      method: "PUT",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume",
      access: "trusted",
      handler: async (req) => (custom(req), await volumes.update(pool(req), req.project, vol(req), body<StorageVolumePut>(req), "put", ifMatch(req)), empty()),
    },
    {
      method: "PATCH",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume",
      access: "trusted",
      handler: async (req) => (custom(req), await volumes.update(pool(req), req.project, vol(req), body<StorageVolumePut>(req), "patch", ifMatch(req)), empty()),
    },
    {
      method: "POST",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume",
      access: "trusted",
      handler: async (req) => {
        custom(req);
        const b = body<StorageVolumePost>(req);
        return op(req, b.pool && b.pool !== pool(req) ? "Moving storage volume" : "Renaming storage volume", volumeUrl(pool(req), "custom", vol(req), req.project), (signal) => volumes.rename(pool(req), req.project, vol(req), b, signal));
      },
    },
    { method: "DELETE", path: "/1.0/storage-pools/:pool/volumes/:type/:volume", access: "trusted", handler: async (req) => (custom(req), await volumes.delete(pool(req), req.project, vol(req)), empty()) },
    { method: "GET", path: "/1.0/storage-pools/:pool/volumes/:type/:volume/state", access: "trusted", handler: async (req) => sync(await volumes.state(pool(req), req.project, type(req), vol(req))) },

    {
      method: "GET",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume/snapshots",
      access: "trusted",
      handler: async (req) => {
        if (type(req) !== "custom") {
          // An instance's volume: its snapshots are the instance's (as LXD lists them).
          const names = await volumes.instanceSnapshotNames(req.project, vol(req));
          const base = volumeUrl(pool(req), type(req), vol(req), req.project).split("?")[0];
          return sync(names.map((n) => `${base}/snapshots/${encodeURIComponent(n)}`));
        }
        const all = await volumes.snapshots(pool(req), req.project, vol(req));
        const base = volumeUrl(pool(req), "custom", vol(req), req.project).split("?")[0];
        return sync(recursion(req) === 0 ? all.map((s) => `${base}/snapshots/${encodeURIComponent(s.name)}`) : all.map((s) => volumes.snapshotView(s)));
      },
    },
    {
      method: "POST",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume/snapshots",
      access: "trusted",
      handler: async (req) => {
        custom(req);
        const b = body<{ name?: string; expires_at?: string }>(req);
        await volumes.record(pool(req), req.project, vol(req));
        return op(req, "Snapshotting storage volume", volumeUrl(pool(req), "custom", vol(req), req.project), (signal) => volumes.createSnapshot(pool(req), req.project, vol(req), b, signal));
      },
    },
    {
      method: "GET",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume/snapshots/:snapshot",
      access: "trusted",
      handler: async (req) => (custom(req), sync(volumes.snapshotView(await volumes.snapshotRecord(pool(req), req.project, vol(req), snap(req))))),
    },
    ...(["PUT", "PATCH"] as const).map(
      (method): Route => ({
        method,
        path: "/1.0/storage-pools/:pool/volumes/:type/:volume/snapshots/:snapshot",
        access: "trusted",
        handler: async (req) => (custom(req), await volumes.updateSnapshot(pool(req), req.project, vol(req), snap(req), body(req)), empty()),
      }),
    ),
    {
      method: "POST",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume/snapshots/:snapshot",
      access: "trusted",
      handler: async (req) => {
        custom(req);
        const b = body<{ name?: unknown }>(req);
        await volumes.snapshotRecord(pool(req), req.project, vol(req), snap(req));
        return op(req, "Renaming storage volume snapshot", volumeUrl(pool(req), "custom", vol(req), req.project), () => volumes.renameSnapshot(pool(req), req.project, vol(req), snap(req), b.name));
      },
    },
    {
      method: "DELETE",
      path: "/1.0/storage-pools/:pool/volumes/:type/:volume/snapshots/:snapshot",
      access: "trusted",
      handler: async (req) => {
        custom(req);
        await volumes.snapshotRecord(pool(req), req.project, vol(req), snap(req));
        return op(req, "Deleting storage volume snapshot", volumeUrl(pool(req), "custom", vol(req), req.project), () => volumes.deleteSnapshot(pool(req), req.project, vol(req), snap(req)));
      },
    },
  ];
}
