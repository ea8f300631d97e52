import type { Operation } from "../../api/operation.js";
import { badRequest } from "../../api/errors.js";
import type { OperationManager } from "../../core/operations.js";
import { empty, flag, recursion, sync, type Request, type Route, type WsRoute } from "../route.js";

export function operationRoutes(deps: { operations: OperationManager }): { routes: Route[]; ws: WsRoute[] } {
  const { operations } = deps;

  function list(req: Request) {
    const ops = operations.list(flag(req.query["all-projects"]) ? undefined : req.project);
    const full = recursion(req) > 0;
    const byStatus: Record<string, (Operation | string)[]> = {};
    for (const op of ops) (byStatus[op.status.toLowerCase()] ??= []).push(full ? op : `/1.0/operations/${op.id}`);
    return sync(byStatus);
  }

  async function wait(req: Request) {
    const raw = req.query.timeout ?? "-1";
    const seconds = Number(raw);
    if (!Number.isFinite(seconds)) throw badRequest(`Invalid timeout "${raw}": give seconds, or -1 for no limit`);
    return sync(await operations.wait(req.params.id!, seconds < 0 ? -1 : seconds * 1000, req.signal));
  }

  const routes: Route[] = [
    { method: "GET", path: "/1.0/operations", access: "trusted", handler: list },
    { method: "GET", path: "/1.0/operations/:id", access: "trusted", handler: (req) => sync(operations.get(req.params.id!)) },
    {
      method: "DELETE",
      path: "/1.0/operations/:id",
      access: "trusted",
      handler: (req) => {
        operations.cancel(req.params.id!);
        return empty();
      },
    },
    { method: "GET", path: "/1.0/operations/:id/wait", access: "trusted", handler: wait },
  ];

  // The secret is the credential here, as in LXD: exec/console clients connect with it.
  const ws: WsRoute[] = [
    {
      path: "/1.0/operations/:id/websocket",
      access: "untrusted",
      accept: (req) => {
        const id = req.params.id!;
        const secret = req.query.secret ?? "";
        operations.get(id); // 404 before the upgrade when there is no such operation
        return (sock) => {
          if (!operations.connect(id, secret, sock)) sock.close(1008, "invalid secret or operation finished");
        };
      },
    },
  ];
  return { routes, ws };
}
