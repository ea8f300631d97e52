import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import type { WebSocket } from "ws";
import type { Operation } from "../api/operation.js";
import { badRequest } from "../api/errors.js";

/**
 * Who may call a route. Over the unix socket every caller is trusted (the socket's mode is
 * the gate); over HTTPS, "trusted" needs a client certificate in the trust store.
 */
export type Access = "untrusted" | "trusted";

export interface Caller {
  trusted: boolean;
  protocol: "unix" | "tls";
  address: string;
}

export interface Request {
  params: Record<string, string>;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body, or a stream for routes with `rawBody` when the body is not JSON. */
  body: unknown;
  project: string;
  caller: Caller;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export type Reply =
  | { kind: "sync"; metadata: unknown; etag?: string; status?: number; location?: string }
  | { kind: "async"; operation: Operation }
  | { kind: "raw"; status?: number; headers?: Record<string, string>; body: Buffer | string | Readable };

export const sync = (metadata: unknown, opts: { etag?: string; status?: number; location?: string } = {}): Reply => ({
  kind: "sync",
  metadata,
  ...opts,
});
export const empty = (): Reply => ({ kind: "sync", metadata: {} });
export const async = (operation: Operation): Reply => ({ kind: "async", operation });
export const raw = (body: Buffer | string | Readable, headers?: Record<string, string>, status?: number): Reply => ({
  kind: "raw",
  body,
  headers,
  status,
});

export interface Route {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Fastify-style path: "/1.0/operations/:id". */
  path: string;
  access: Access;
  /** JSON schema of the body; a request that does not match gets a 400 naming the fault. */
  schema?: object;
  /**
   * The handler takes a raw stream body: "always" (file contents, whatever their type), or
   * "typed" (only when the request says it is a file: application/octet-stream or multipart;
   * anything else is JSON, as LXD reads image and instance creates).
   */
  rawBody?: "always" | "typed";
  handler: (req: Request) => Promise<Reply> | Reply;
}

/** A websocket endpoint. `accept` runs before the upgrade, so it can still refuse with an HTTP error. */
export interface WsRoute {
  path: string;
  access: Access;
  accept: (req: Request, http: IncomingMessage) => Promise<(ws: WebSocket) => void> | ((ws: WebSocket) => void);
}

/** Query flags as LXD reads them: "1"/"true" are on. */
export function flag(v: string | undefined): boolean {
  return v === "1" || v === "true";
}

/** The `recursion` query parameter (0, 1 or 2). */
export function recursion(req: Request): number {
  const v = req.query.recursion;
  if (v === undefined || v === "") return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw badRequest(`Invalid recursion value "${v}": use 0, 1 or 2`);
  return Math.min(n, 2);
}

/** Compiles a route path into a matcher returning its params, or null. */
export function compilePath(path: string): (url: string) => Record<string, string> | null {
  const names: string[] = [];
  const re = new RegExp(
    "^" +
      path
        .split("/")
        .map((seg) => {
          if (seg.startsWith(":")) {
            names.push(seg.slice(1));
            return "([^/]+)";
          }
          return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        })
        .join("/") +
      "/?$",
  );
  return (url) => {
    const m = re.exec(url);
    if (!m) return null;
    const params: Record<string, string> = {};
    names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
    return params;
  };
}

/** The ETag a client sent in If-Match (quotes stripped), if any. */
export function ifMatch(req: Request): string | undefined {
  const h = req.headers["if-match"];
  if (!h || Array.isArray(h)) return undefined;
  return h.replace(/^W\//, "").replace(/^"|"$/g, "") || undefined;
}
