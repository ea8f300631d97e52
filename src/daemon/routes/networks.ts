import { badRequest } from "../../api/errors.js";
import type { NetworkForwardsPost, NetworkPut, NetworksPost } from "../../api/network.js";
import type { NetworkForwards } from "../../networks/forwards.js";
import { networkUrl } from "../../networks/record.js";
import type { NetworkService } from "../../networks/service.js";
import { empty, ifMatch, recursion, sync, type Request, type Route } from "../route.js";

export interface NetworkRouteDeps {
  networks: NetworkService;
  forwards: NetworkForwards;
}

/** /1.0/networks and below: LXD 5.0's shapes, synchronous as LXD 5.0's are. */
export function networkRoutes({ networks, forwards }: NetworkRouteDeps): Route[] {
  const name = (req: Request) => req.params.name!;
  const listen = (req: Request) => req.params.listen!;
  const body = <T>(req: Request): T => {
    const b = req.body ?? {};
    if (typeof b !== "object" || Array.isArray(b)) throw badRequest("The request body must be a JSON object");
    return b as T;
  };
  const forwardUrl = (req: Request, addr: string) => `/1.0/networks/${encodeURIComponent(name(req))}/forwards/${encodeURIComponent(addr)}`;

  return [
    {
      method: "GET",
      path: "/1.0/networks",
      access: "trusted",
      handler: async (req) => {
        const all = await networks.list(req.project);
        return sync(recursion(req) === 0 ? all.map((n) => networkUrl(req.project, n.name)) : all);
      },
    },
    {
      method: "POST",
      path: "/1.0/networks",
      access: "trusted",
      handler: async (req) => {
        const n = await networks.create(req.project, body<NetworksPost>(req));
        return sync({}, { status: 201, location: networkUrl(req.project, n.name) });
      },
    },
    {
      method: "GET",
      path: "/1.0/networks/:name",
      access: "trusted",
      handler: async (req) => {
        const { network, etag } = await networks.get(req.project, name(req));
        return sync(network, { etag });
      },
    },
    {
      method: "PUT",
      path: "/1.0/networks/:name",
      access: "trusted",
      handler: async (req) => {
        await networks.update(req.project, name(req), body<NetworkPut>(req), "put", ifMatch(req));
        return empty();
      },
    },
    {
      method: "PATCH",
      path: "/1.0/networks/:name",
      access: "trusted",
      handler: async (req) => {
        await networks.update(req.project, name(req), body<NetworkPut>(req), "patch", ifMatch(req));
        return empty();
      },
    },
    {
      method: "POST",
      path: "/1.0/networks/:name",
      access: "trusted",
      handler: async (req) => {
        const target = await networks.rename(req.project, name(req), body<{ name?: unknown }>(req).name);
        return sync({}, { status: 201, location: networkUrl(req.project, target) });
      },
    },
    {
      method: "DELETE",
      path: "/1.0/networks/:name",
      access: "trusted",
      handler: async (req) => {
        await networks.delete(req.project, name(req));
        return empty();
      },
    },
    {
      method: "GET",
      path: "/1.0/networks/:name/leases",
      access: "trusted",
      handler: async (req) => sync((await networks.leases(req.project, name(req))).map((l) => ({ hostname: l.hostname, hwaddr: l.hwaddr, address: l.address, type: l.type, location: "none" }))),
    },
    {
      method: "GET",
      path: "/1.0/networks/:name/state",
      access: "trusted",
      handler: async (req) => sync(await networks.state(req.project, name(req))),
    },
    {
      method: "GET",
      path: "/1.0/networks/:name/forwards",
      access: "trusted",
      handler: async (req) => {
        const all = await forwards.list(req.project, name(req));
        return sync(recursion(req) === 0 ? all.map((f) => forwardUrl(req, f.listen_address)) : all.map((f) => forwards.view(f)));
      },
    },
    {
      method: "POST",
      path: "/1.0/networks/:name/forwards",
      access: "trusted",
      handler: async (req) => {
        const f = await forwards.create(req.project, name(req), body<NetworkForwardsPost>(req));
        return sync({}, { status: 201, location: forwardUrl(req, f.listen_address) });
      },
    },
    {
      method: "GET",
      path: "/1.0/networks/:name/forwards/:listen",
      access: "trusted",
      handler: async (req) => {
        const f = await forwards.get(req.project, name(req), listen(req));
        return sync(forwards.view(f), { etag: forwards.etag(f) });
      },
    },
    {
      method: "PUT",
      path: "/1.0/networks/:name/forwards/:listen",
      access: "trusted",
      handler: async (req) => {
        await forwards.update(req.project, name(req), listen(req), body<Partial<NetworkForwardsPost>>(req), "put", ifMatch(req));
        return empty();
      },
    },
    {
      method: "PATCH",
      path: "/1.0/networks/:name/forwards/:listen",
      access: "trusted",
      handler: async (req) => {
        await forwards.update(req.project, name(req), listen(req), body<Partial<NetworkForwardsPost>>(req), "patch", ifMatch(req));
        return empty();
      },
    },
    {
      method: "DELETE",
      path: "/1.0/networks/:name/forwards/:listen",
      access: "trusted",
      handler: async (req) => {
        await forwards.delete(req.project, name(req), listen(req));
        return empty();
      },
    },
  ];
}
