import type { Route } from "../route.js";

/**
 * LXD 5.0 still serves its pre-`instances` API, /1.0/containers, as containers-only views of
 * /1.0/instances, and older clients use nothing else (Debian's pylxd 2.2). While every
 * instance is a container, the alias is the same handler under the old path: this appends a
 * /1.0/containers twin for every /1.0/instances route in the table (answers still name
 * /1.0/instances URLs, which such clients only split for the name).
 */
export function withContainerAliases(routes: Route[]): Route[] {
  const aliases = routes
    .filter((r) => r.path === "/1.0/instances" || r.path.startsWith("/1.0/instances/"))
    .map((r) => ({ ...r, path: "/1.0/containers" + r.path.slice("/1.0/instances".length) }));
  const taken = new Set(routes.map((r) => `${r.method} ${r.path}`));
  return [...routes, ...aliases.filter((a) => !taken.has(`${a.method} ${a.path}`))];
}
