import { request as httpRequest, Agent, type IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import type WebSocket from "ws";
import { ApiError } from "../api/errors.js";
import type { Event, EventType } from "../api/event.js";
import type { Operation } from "../api/operation.js";
import { lodgeDir, socketPath } from "../api/paths.js";
import type { Response } from "../api/response.js";

export interface ClientOptions {
  /** Unix socket path; default $LODGE_DIR/unix.socket. */
  socket?: string;
  /** Project added to every request as ?project=. */
  project?: string;
}

export interface RawResponse<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  body: Response<T>;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Send this stream as the body instead of JSON (uploads). */
  stream?: Readable;
  signal?: AbortSignal;
}

/** The daemon could not be reached at all (not running, wrong socket, no permission). */
export class ConnectionError extends Error {
  constructor(
    readonly socket: string,
    cause: NodeJS.ErrnoException,
  ) {
    const why =
      cause.code === "ENOENT" || cause.code === "ECONNREFUSED"
        ? "is lodged running? Start it with `lodged`, or set LODGE_DIR to its directory"
        : cause.code === "EACCES"
          ? "permission denied: run as root or as a member of the socket's group"
          : cause.message;
    super(`cannot connect to ${socket}: ${why}`);
    this.name = "ConnectionError";
  }
}

/**
 * Typed client for lodged's (LXD-compatible) API over the unix socket. Used by the CLI and by
 * the tests; HTTPS remotes plug in as another transport later.
 */
export class LodgeClient {
  readonly socket: string;
  readonly project?: string;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });

  constructor(opts: ClientOptions = {}) {
    this.socket = opts.socket ?? socketPath(lodgeDir());
    this.project = opts.project;
  }

  close(): void {
    this.agent.destroy();
  }

  /** Adds ?project= when this client is bound to a project and the path has none. */
  url(path: string): string {
    if (!this.project || /[?&]project=/.test(path)) return path;
    return path + (path.includes("?") ? "&" : "?") + `project=${encodeURIComponent(this.project)}`;
  }

  /** One HTTP exchange; returns the envelope whatever the status (no throw on API errors). */
  raw<T = unknown>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<RawResponse<T>> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined || opts.stream ? undefined : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string | number> = { ...opts.headers };
      if (payload) {
        headers["content-type"] = "application/json";
        headers["content-length"] = payload.length;
      }
      const req = httpRequest(
        { socketPath: this.socket, path: this.url(path), method, headers, agent: this.agent, signal: opts.signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Response<T> });
            } catch {
              reject(new ApiError(res.statusCode ?? 500, `unexpected non-JSON answer (${res.statusCode}): ${text.slice(0, 200)}`));
            }
          });
        },
      );
      req.on("error", (e: NodeJS.ErrnoException) =>
        reject(e.code && ["ENOENT", "ECONNREFUSED", "EACCES"].includes(e.code) ? new ConnectionError(this.socket, e) : e),
      );
      if (opts.stream) opts.stream.pipe(req);
      else req.end(payload);
    });
  }

  /** Sends a request and returns its metadata; throws ApiError on an error envelope. */
  async query<T = unknown>(method: string, path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
    const r = await this.raw<T>(method, path, body, opts);
    if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
    return r.body.metadata;
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.query<T>("GET", path);
  }
  put<T = unknown>(path: string, body: unknown, opts?: RequestOptions): Promise<T> {
    return this.query<T>("PUT", path, body, opts);
  }
  patch<T = unknown>(path: string, body: unknown, opts?: RequestOptions): Promise<T> {
    return this.query<T>("PATCH", path, body, opts);
  }
  post<T = unknown>(path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
    return this.query<T>("POST", path, body, opts);
  }
  delete<T = unknown>(path: string): Promise<T> {
    return this.query<T>("DELETE", path);
  }

  /** Waits for an operation to finish (server-side wait); throws if it failed or was cancelled. */
  async wait(op: Operation | string, timeoutSeconds = -1): Promise<Operation> {
    const id = typeof op === "string" ? op.replace(/^\/1\.0\/operations\//, "") : op.id;
    const done = await this.get<Operation>(`/1.0/operations/${id}/wait?timeout=${timeoutSeconds}`);
    if (done.status_code === 400 || done.status_code === 401) throw new ApiError(400, done.err || done.status);
    return done;
  }

  /**
   * Opens a websocket on the daemon (events, operation sockets). With `paused`, nothing is
   * read from it until the caller's handlers are in place and it calls `resume()`: a stream
   * the server starts writing at once loses no message to a handler attached a tick late.
   */
  async websocket(path: string, opts: { paused?: boolean } = {}): Promise<WebSocket> {
    // Loaded on first use: ws pulls in https, tls, zlib..., which a plain request never needs
    // (about 40 ms of every `lodge` start-up otherwise).
    const { default: WebSocketImpl } = await import("ws");
    return new Promise((resolve, reject) => {
      const ws = new WebSocketImpl(`ws+unix://${this.socket}:${this.url(path)}`);
      ws.once("open", () => {
        if (opts.paused) ws.pause();
        resolve(ws);
      });
      ws.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let msg = `websocket refused (${res.statusCode})`;
          try {
            msg = (JSON.parse(Buffer.concat(chunks).toString()) as { error: string }).error;
          } catch {
            // keep the generic message
          }
          reject(new ApiError(res.statusCode ?? 500, msg));
        });
      });
      ws.once("error", (e: NodeJS.ErrnoException) =>
        reject(e.code && ["ENOENT", "ECONNREFUSED", "EACCES"].includes(e.code) ? new ConnectionError(this.socket, e) : e),
      );
    });
  }

  /** Subscribes to /1.0/events; resolves once the subscription is live. */
  async events(
    onEvent: (e: Event) => void,
    opts: { types?: EventType[]; allProjects?: boolean } = {},
  ): Promise<{ close: () => void; closed: Promise<void> }> {
    const q = new URLSearchParams();
    if (opts.types?.length) q.set("type", opts.types.join(","));
    if (opts.allProjects) q.set("all-projects", "true");
    const qs = q.toString();
    const ws = await this.websocket(`/1.0/events${qs ? "?" + qs : ""}`);
    ws.on("message", (data) => onEvent(JSON.parse(data.toString()) as Event));
    const closed = new Promise<void>((res) => ws.once("close", () => res()));
    return { close: () => ws.close(), closed };
  }
}
