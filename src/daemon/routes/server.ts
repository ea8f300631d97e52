import { Type } from "@sinclair/typebox";
import type { Server, ServerUntrusted } from "../../api/server.js";
import type { ServerConfig } from "../../config/server.js";
import { empty, ifMatch, sync, type Request, type Route } from "../route.js";
import type { ServerInfo } from "../server-info.js";

const ServerPutSchema = Type.Object({ config: Type.Optional(Type.Record(Type.String(), Type.Any())) });

export function serverRoutes(deps: { config: ServerConfig; info: ServerInfo }): Route[] {
  const { config, info } = deps;

  async function getServer(req: Request) {
    const base: ServerUntrusted = info.untrusted(req.caller.trusted);
    if (!req.caller.trusted) return sync(base);
    const server: Server = {
      ...base,
      config: await config.visible(),
      environment: await info.environment(req.project),
    };
    return sync(server, { etag: await config.etag() });
  }

  const write =
    (apply: (cfg: Record<string, unknown>, ifMatch?: string) => Promise<void>) =>
    async (req: Request) => {
      await apply(((req.body ?? {}) as { config?: Record<string, unknown> }).config ?? {}, ifMatch(req));
      return empty();
    };

  return [
    { method: "GET", path: "/1.0", access: "untrusted", handler: getServer },
    { method: "PUT", path: "/1.0", access: "trusted", schema: ServerPutSchema, handler: write((c, i) => config.replace(c, i)) },
    { method: "PATCH", path: "/1.0", access: "trusted", schema: ServerPutSchema, handler: write((c, i) => config.patch(c, i)) },
  ];
}
