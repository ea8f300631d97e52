import { Type } from "@sinclair/typebox";
import type { WarningStatus } from "../../api/warning.js";
import type { WarningService } from "../../warnings/service.js";
import { empty, flag, recursion, sync, type Request, type Route } from "../route.js";

const WarningPutSchema = Type.Object({ status: Type.String() });

export function warningRoutes(deps: { warnings: WarningService }): Route[] {
  const { warnings } = deps;
  // PUT and PATCH are the same here: status is the only writable field.
  const setStatus = async (req: Request) => {
    await warnings.setStatus(req.params.uuid!, (req.body as { status: WarningStatus }).status);
    return empty();
  };
  return [
    {
      method: "GET",
      path: "/1.0/warnings",
      access: "trusted",
      handler: async (req) => {
        const list = await warnings.list(flag(req.query["all-projects"]) ? undefined : req.project);
        return sync(recursion(req) > 0 ? list : list.map((w) => `/1.0/warnings/${w.uuid}`));
      },
    },
    {
      method: "GET",
      path: "/1.0/warnings/:uuid",
      access: "trusted",
      handler: async (req) => sync(await warnings.get(req.params.uuid!)),
    },
    { method: "PUT", path: "/1.0/warnings/:uuid", access: "trusted", schema: WarningPutSchema, handler: setStatus },
    { method: "PATCH", path: "/1.0/warnings/:uuid", access: "trusted", schema: WarningPutSchema, handler: setStatus },
    {
      method: "DELETE",
      path: "/1.0/warnings/:uuid",
      access: "trusted",
      handler: async (req) => {
        await warnings.delete(req.params.uuid!);
        return empty();
      },
    },
  ];
}
