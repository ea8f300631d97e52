import { sync, type Route } from "../route.js";

export const rootRoutes: Route[] = [{ method: "GET", path: "/", access: "untrusted", handler: () => sync(["/1.0"]) }];
