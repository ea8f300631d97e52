import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { IncomingMessage } from "node:http";
import type { Duplex, Readable } from "node:stream";
import { WebSocketServer } from "ws";
import { ApiError, isApiError } from "../api/errors.js";
import { errorResponse, syncResponse } from "../api/response.js";
import type { Logger } from "../core/logger.js";
import { compilePath, type Caller, type Reply, type Request, type Route, type WsRoute } from "./route.js";

/** JSON bodies above this are refused (uploads use raw streams and are not limited by it). */
export const JSON_BODY_LIMIT = 8 * 1024 * 1024;

export interface HttpOptions {
  routes: Route[];
  wsRoutes: WsRoute[];
  log: Logger;
  /** Tells who is calling on a given connection. */
  caller: (req: IncomingMessage) => Caller;
  /** Resolves and checks the `project` query parameter. */
  project: (name: string | undefined) => string;
}

/**
 * Builds the HTTP server from route tables. It owns the wire concerns only: body parsing,
 * LXD envelopes, error mapping, 404/405, websocket upgrades. Handlers never build envelopes.
 */
export function buildHttp(opts: HttpOptions): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: JSON_BODY_LIMIT,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 2048 },
    forceCloseConnections: true,
    return503OnClosing: true,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (req, payload, done) => {
    const route = req.routeOptions.config as { rawBody?: "always" | "typed" } | undefined;
    const type = String(req.headers["content-type"] ?? "");
    // As LXD: an image or backup upload is a file only when it says so; anything else is JSON
    // (clients such as Ansible's send JSON without a content type). File contents are raw.
    const file = type.startsWith("application/octet-stream") || type.startsWith("multipart/");
    if (route?.rawBody === "always" ? !type.startsWith("application/json") : route?.rawBody === "typed" && file) return done(null, payload);
    readJson(payload, JSON_BODY_LIMIT).then(
      (v) => done(null, v),
      (e: Error) => done(e, undefined),
    );
  });

  const matchers = opts.routes.map((r) => ({ method: r.method, match: compilePath(r.path) }));

  for (const route of opts.routes) {
    app.route({
      method: route.method,
      url: route.path,
      config: { rawBody: route.rawBody },
      schema: route.schema ? { body: route.schema } : undefined,
      handler: async (req, reply) => {
        const r = toRequest(req, opts);
        if (route.access === "trusted" && !r.caller.trusted) throw new ApiError(403, "not authorized");
        const out = await route.handler(r);
        return send(reply, out);
      },
    });
  }

  app.setSchemaErrorFormatter((errors) => {
    const e = errors[0]!;
    const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "body";
    return new ApiError(400, `Invalid request: ${where} ${e.message ?? "is invalid"}`);
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    const { status, message } = mapError(err);
    if (status >= 500) opts.log.error("request failed", { method: req.method, url: req.url, err: message });
    else opts.log.debug("request refused", { method: req.method, url: req.url, status, err: message });
    void reply.code(status).type("application/json").send(JSON.stringify(errorResponse(status, message)));
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0]!;
    const allowed = matchers.filter((m) => m.match(path)).map((m) => m.method);
    if (allowed.length > 0) {
      void reply
        .code(405)
        .header("allow", [...new Set(allowed)].join(", "))
        .type("application/json")
        .send(JSON.stringify(errorResponse(405, `Method ${req.method} not allowed on ${path}; use ${allowed.join(", ")}`)));
      return;
    }
    void reply.code(404).type("application/json").send(JSON.stringify(errorResponse(404, "not found")));
  });

  attachWebsockets(app, opts);
  return app;
}

function toRequest(req: FastifyRequest, opts: HttpOptions): Request {
  const query = (req.query ?? {}) as Record<string, string>;
  const ac = new AbortController();
  req.raw.once("close", () => ac.abort());
  return {
    params: (req.params ?? {}) as Record<string, string>,
    query,
    headers: req.headers,
    body: req.body,
    project: opts.project(query.project),
    caller: opts.caller(req.raw),
    signal: ac.signal,
  };
}

function send(reply: FastifyReply, out: Reply): FastifyReply {
  switch (out.kind) {
    case "sync": {
      if (out.etag) reply.header("etag", `"${out.etag}"`);
      if (out.location) reply.header("location", out.location);
      return reply
        .code(out.status ?? 200)
        .type("application/json")
        .send(JSON.stringify(syncResponse(out.metadata)));
    }
    case "async": {
      const url = `/1.0/operations/${out.operation.id}`;
      return reply
        .code(202)
        .header("location", url)
        .type("application/json")
        .send(
          JSON.stringify({
            type: "async",
            status: "Operation created",
            status_code: 100,
            operation: url,
            error_code: 0,
            error: "",
            metadata: out.operation,
          }),
        );
    }
    case "raw": {
      for (const [k, v] of Object.entries(out.headers ?? {})) reply.header(k, v);
      return reply.code(out.status ?? 200).send(out.body);
    }
  }
}

export function mapError(err: unknown): { status: number; message: string } {
  if (isApiError(err)) return { status: err.status, message: err.message };
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE")
    return { status: 413, message: `Request body too large (limit ${JSON_BODY_LIMIT} bytes)` };
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return { status: 415, message: "Unsupported content type" };
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500)
    return { status: e.statusCode, message: e.message ?? "bad request" };
  return { status: 500, message: e.message ?? String(err) };
}

/** Reads a JSON body with a size limit; an empty body is `undefined`. */
function readJson(stream: Readable, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    stream.on("data", (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new ApiError(413, `Request body too large (limit ${limit} bytes)`));
        stream.resume();
        return;
      }
      chunks.push(c);
    });
    stream.on("error", (e) => !failed && reject(e));
    stream.on("end", () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `Invalid JSON in request body: ${(e as Error).message}`));
      }
    });
  });
}

function attachWebsockets(app: FastifyInstance, opts: HttpOptions): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  const table = opts.wsRoutes.map((r) => ({ route: r, match: compilePath(r.path) }));

  app.server.on("upgrade", (http: IncomingMessage, socket: Duplex, head: Buffer) => {
    void (async () => {
      const url = new URL(http.url ?? "/", "http://lodge");
      const hit = table.map((t) => ({ ...t, params: t.match(url.pathname) })).find((t) => t.params);
      try {
        if (!hit) throw new ApiError(404, "not found");
        const query = Object.fromEntries(url.searchParams);
        const caller = opts.caller(http);
        if (hit.route.access === "trusted" && !caller.trusted) throw new ApiError(403, "not authorized");
        const req: Request = {
          params: hit.params!,
          query,
          headers: http.headers,
          body: undefined,
          project: opts.project(query.project),
          caller,
          signal: new AbortController().signal,
        };
        const onOpen = await hit.route.accept(req, http);
        wss.handleUpgrade(http, socket, head, (ws) => onOpen(ws));
      } catch (err) {
        const { status, message } = mapError(err);
        const body = JSON.stringify(errorResponse(status, message));
        socket.end(
          `HTTP/1.1 ${status} ${status === 404 ? "Not Found" : "Error"}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
    })();
  });
  // Before the server closes: upgraded sockets are not the HTTP server's to close, and an open
  // events stream would otherwise keep shutdown waiting forever.
  app.addHook("preClose", async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
}
