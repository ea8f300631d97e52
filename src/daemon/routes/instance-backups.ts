import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { badRequest } from "../../api/errors.js";
import { backupUrl, toApiBackup, type BackupService, type BackupsPost } from "../../backups/service.js";
import { importBackup, type ImportDeps } from "../../backups/import.js";
import type { OperationManager } from "../../core/operations.js";
import { instanceUrl } from "../../instances/record.js";
import { async, raw, recursion, sync, type Reply, type Request, type Route } from "../route.js";
import { instanceResources } from "./instance-operation.js";

export interface BackupRouteDeps {
  backups: BackupService;
  operations: OperationManager;
}

/** /1.0/instances/<name>/backups: LXD 5.0's shapes (container_backup). */
export function instanceBackupRoutes(deps: BackupRouteDeps): Route[] {
  const { backups, operations } = deps;
  const inst = (req: Request) => req.params.name!;
  const bname = (req: Request) => req.params.backup!;

  async function list(req: Request) {
    const all = await backups.list(req.project, inst(req));
    return sync(recursion(req) > 0 ? all.map(toApiBackup) : all.map((b) => backupUrl(req.project, inst(req), b.name)));
  }

  async function create(req: Request) {
    const body = (req.body ?? {}) as BackupsPost;
    if (typeof body !== "object" || Array.isArray(body)) throw badRequest("The request body must be a backup object");
    const rec = await backups.prepare(req.project, inst(req), body);
    return async(
      operations.create({
        description: "Backing up instance",
        project: req.project,
        // `lxc export` reads the backup's name from resources.backups[0].
        resources: { ...instanceResources(req.project, inst(req)), containers: instanceResources(req.project, inst(req)).instances!, backups: [rec.name] },
        cancellable: true,
        run: async (ctx) => {
          await backups.create(rec, { signal: ctx.signal, onProgress: (t) => ctx.updateMetadata({ create_backup_progress: t }) });
        },
      }),
    );
  }

  return [
    { method: "GET", path: "/1.0/instances/:name/backups", access: "trusted", handler: list },
    { method: "POST", path: "/1.0/instances/:name/backups", access: "trusted", handler: create },
    {
      method: "GET",
      path: "/1.0/instances/:name/backups/:backup",
      access: "trusted",
      handler: async (req) => sync(toApiBackup(await backups.get(req.project, inst(req), bname(req)))),
    },
    {
      method: "POST",
      path: "/1.0/instances/:name/backups/:backup",
      access: "trusted",
      handler: async (req) => {
        await backups.get(req.project, inst(req), bname(req));
        const to = ((req.body ?? {}) as { name?: unknown }).name;
        return async(
          operations.create({
            description: "Renaming instance backup",
            project: req.project,
            resources: instanceResources(req.project, inst(req)),
            run: async () => backups.rename(req.project, inst(req), bname(req), to),
          }),
        );
      },
    },
    {
      method: "DELETE",
      path: "/1.0/instances/:name/backups/:backup",
      access: "trusted",
      handler: async (req) => {
        await backups.get(req.project, inst(req), bname(req));
        return async(
          operations.create({
            description: "Removing instance backup",
            project: req.project,
            resources: instanceResources(req.project, inst(req)),
            run: async () => backups.delete(req.project, inst(req), bname(req)),
          }),
        );
      },
    },
    {
      method: "GET",
      path: "/1.0/instances/:name/backups/:backup/export",
      access: "trusted",
      handler: async (req) => {
        await backups.get(req.project, inst(req), bname(req));
        const path = backups.filePath(req.project, inst(req), bname(req));
        return raw(createReadStream(path), {
          "content-type": "application/octet-stream",
          "content-length": String((await stat(path)).size),
        });
      },
    },
  ];
}

/**
 * POST /1.0/instances with a backup tarball as the body (`lxc import`). The reply waits until
 * the body is read (as image uploads do), so the client sees the operation after its upload.
 */
export function importBackupHandler(deps: ImportDeps & { operations: OperationManager }) {
  return async (req: Request, body: Readable): Promise<Reply> => {
    let bodyRead!: () => void;
    const consumed = new Promise<void>((r) => (bodyRead = r));
    const h = (n: string) => {
      const v = req.headers[n];
      return Array.isArray(v) ? v[0] : v;
    };
    const length = Number(h("content-length"));
    const op = deps.operations.create({
      description: "Restoring backup",
      project: req.project,
      cancellable: true,
      run: async (ctx) => {
        const tracked = (async function* () {
          try {
            for await (const c of body) yield c as Buffer;
          } finally {
            body.resume(); // what a refusal left unread is drained, not left hanging
            bodyRead();
          }
        })();
        try {
          const { record } = await importBackup(deps, {
            project: req.project,
            body: tracked,
            name: h("x-lxd-name"),
            pool: h("x-lxd-pool"),
            contentLength: Number.isFinite(length) && length > 0 ? length : undefined,
            signal: ctx.signal,
            onProgress: (t) => ctx.updateMetadata({ create_instance_from_backup_progress: t }),
          });
          return { instance: instanceUrl(record.project, record.name) };
        } finally {
          body.resume();
          bodyRead();
        }
      },
    });
    await consumed;
    return async(op);
  };
}
