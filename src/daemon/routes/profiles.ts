import { badRequest } from "../../api/errors.js";
import type { ProfilePut, ProfilesPost } from "../../api/profile.js";
import { profileUrl } from "../../profiles/record.js";
import type { ProfileService } from "../../profiles/service.js";
import { empty, ifMatch, recursion, sync, type Request, type Route } from "../route.js";

export interface ProfileRouteDeps {
  profiles: ProfileService;
}

/** /1.0/profiles and /1.0/profiles/<name>: LXD 5.0's shapes, all synchronous as LXD's are. */
export function profileRoutes({ profiles }: ProfileRouteDeps): Route[] {
  const name = (req: Request) => req.params.name!;
  const body = <T>(req: Request): T => {
    const b = req.body ?? {};
    if (typeof b !== "object" || Array.isArray(b)) throw badRequest("The request body must be a profile object");
    return b as T;
  };

  return [
    {
      method: "GET",
      path: "/1.0/profiles",
      access: "trusted",
      handler: async (req) => {
        if (recursion(req) === 0) return sync((await profiles.names(req.project)).map((n) => profileUrl(req.project, n)));
        return sync(await profiles.list(req.project));
      },
    },
    {
      method: "POST",
      path: "/1.0/profiles",
      access: "trusted",
      handler: async (req) => {
        const p = await profiles.create(req.project, body<ProfilesPost>(req));
        return sync({}, { status: 201, location: profileUrl(req.project, p.name) });
      },
    },
    {
      method: "GET",
      path: "/1.0/profiles/:name",
      access: "trusted",
      handler: async (req) => {
        const { profile, etag } = await profiles.get(req.project, name(req));
        return sync(profile, { etag });
      },
    },
    {
      method: "PUT",
      path: "/1.0/profiles/:name",
      access: "trusted",
      handler: async (req) => {
        await profiles.update(req.project, name(req), body<ProfilePut>(req), "put", ifMatch(req));
        return empty();
      },
    },
    {
      method: "PATCH",
      path: "/1.0/profiles/:name",
      access: "trusted",
      handler: async (req) => {
        await profiles.update(req.project, name(req), body<ProfilePut>(req), "patch", ifMatch(req));
        return empty();
      },
    },
    {
      method: "POST",
      path: "/1.0/profiles/:name",
      access: "trusted",
      handler: async (req) => {
        const target = await profiles.rename(req.project, name(req), body<{ name?: unknown }>(req).name);
        return sync({}, { status: 201, location: profileUrl(req.project, target) });
      },
    },
    {
      method: "DELETE",
      path: "/1.0/profiles/:name",
      access: "trusted",
      handler: async (req) => {
        await profiles.delete(req.project, name(req));
        return empty();
      },
    },
  ];
}
