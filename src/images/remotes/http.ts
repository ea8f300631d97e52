import { createHash, X509Certificate } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { TLSSocket } from "node:tls";
import { ApiError, badRequest } from "../../api/errors.js";
import { LODGE_VERSION } from "../../version.js";

/**
 * The one HTTP client the remote image sources share: http(s):// URLs and LXD's
 * unix:///path/to/socket form (the request path is then appended to the socket's API root).
 * Only what image downloads need: GET/HEAD, a streamed body, a status check, an optional
 * pinned server certificate, cancellation through an AbortSignal.
 */
export interface Endpoint {
  /** The URL the user gave, for messages. */
  readonly server: string;
  /** Base URL for http(s) servers, "http://unix" with socketPath for unix sockets. */
  readonly base: URL;
  readonly socketPath?: string;
  /** PEM of the one certificate the server must present (LXD's TLSServerCert); default CA validation otherwise. */
  readonly certificate?: string;
}

export const USER_AGENT = `LXD ${LODGE_VERSION} (Lodge)`;

/** Parses a remote's address: https://host[:port][/path], http://..., or unix:///path. */
export function parseEndpoint(server: string, opts: { certificate?: string; allowHttp?: boolean } = {}): Endpoint {
  if (!server) throw badRequest("Invalid image source: the server is missing");
  if (server.startsWith("unix:")) {
    const path = decodeURIComponent(server.replace(/^unix:(\/\/)?/, ""));
    if (!path.startsWith("/")) throw badRequest(`Invalid image server "${server}": a unix socket needs an absolute path (unix:///path/to/unix.socket)`);
    return { server, base: new URL("http://unix/"), socketPath: path };
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw badRequest(`Invalid image server "${server}": not a URL`);
  }
  const allowed = opts.allowHttp === false ? ["https:"] : ["https:", "http:"];
  if (!allowed.includes(url.protocol)) throw badRequest(`Invalid image server "${server}": only ${allowed.map((p) => p.replace(":", "")).join(" and ")} are supported`);
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  const certificate = opts.certificate?.trim() || undefined;
  return { server, base: url, certificate };
}

export interface GetOptions {
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Statuses returned rather than thrown (default: only 200). */
  accept?: number[];
}

/** A response whose body the caller reads (or drains with `discard`). */
export interface Response {
  status: number;
  headers: IncomingMessage["headers"];
  body: IncomingMessage;
  /** Total bytes announced by Content-Length, if any. */
  length?: number;
  url: string;
}

/** How long to wait for the server to start answering. */
const RESPONSE_TIMEOUT_MS = 30_000;

/** GET (or HEAD) of `path` relative to the endpoint (or an absolute URL). Non-accepted statuses throw with the server's message. */
export async function request(ep: Endpoint, path: string, opts: GetOptions = {}): Promise<Response> {
  const url = new URL(path.replace(/^\//, ""), ep.base);
  const res = await send(ep, url, opts);
  const accept = opts.accept ?? [200];
  if (!accept.includes(res.status)) {
    const text = await readText(res.body, 64 * 1024).catch(() => "");
    throw remoteError(ep, url, res.status, text);
  }
  return res;
}

/** GET and parse a JSON document (at most `limit` bytes). */
export async function getJson<T>(ep: Endpoint, path: string, opts: GetOptions & { limit?: number } = {}): Promise<T> {
  const res = await request(ep, path, opts);
  const text = await readText(res.body, opts.limit ?? 64 * 1024 * 1024);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(502, `Invalid answer from ${res.url}: not JSON`);
  }
}

function send(ep: Endpoint, url: URL, opts: GetOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    opts.signal?.throwIfAborted();
    const headers = { "user-agent": USER_AGENT, ...opts.headers };
    const common = { method: opts.method ?? "GET", headers, signal: opts.signal };
    const shown = ep.socketPath ? `${ep.server}${url.pathname}${url.search}` : url.toString();
    const onResponse = (res: IncomingMessage) => {
      clearTimeout(timer);
      const len = Number(res.headers["content-length"]);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, length: Number.isFinite(len) && len >= 0 ? len : undefined, url: shown });
    };
    let req: http.ClientRequest;
    if (ep.socketPath) {
      req = http.request({ ...common, socketPath: ep.socketPath, path: url.pathname + url.search }, onResponse);
    } else if (url.protocol === "https:") {
      const pinned = ep.certificate;
      req = https.request(url, { ...common, ...(pinned ? { rejectUnauthorized: false, agent: false } : {}) }, onResponse);
      if (pinned)
        req.once("socket", (s) =>
          s.once("secureConnect", () => {
            if (!matchesPinned(s as TLSSocket, pinned))
              req.destroy(new ApiError(502, `The certificate of ${ep.server} does not match the one given for it`));
          }),
        );
    } else {
      req = http.request(url, common, onResponse);
    }
    const timer = setTimeout(() => req.destroy(new ApiError(504, `${shown} did not answer in ${RESPONSE_TIMEOUT_MS / 1000} s`)), RESPONSE_TIMEOUT_MS);
    req.once("error", (e) => {
      clearTimeout(timer);
      reject(e instanceof ApiError || (e as Error).name === "AbortError" ? e : new ApiError(502, `Unable to reach ${shown}: ${(e as Error).message}`));
    });
    req.end();
  });
}

function matchesPinned(socket: TLSSocket, pem: string): boolean {
  const peer = socket.getPeerCertificate();
  if (!peer?.raw) return false;
  try {
    const want = new X509Certificate(pem).raw;
    return createHash("sha256").update(peer.raw).digest("hex") === createHash("sha256").update(want).digest("hex");
  } catch {
    return false;
  }
}

/** An error for a non-200 answer, carrying LXD's error text when the body is an error envelope. */
function remoteError(ep: Endpoint, url: URL, status: number, body: string): ApiError {
  let msg = "";
  try {
    const j = JSON.parse(body) as { error?: string };
    if (typeof j.error === "string") msg = j.error;
  } catch {
    /* not an LXD envelope */
  }
  const where = ep.socketPath ? `${ep.server}${url.pathname}` : url.toString();
  // A missing remote object is the caller's problem (404), anything else the remote's (502).
  const code = status === 404 ? 404 : status === 403 ? 403 : 502;
  return new ApiError(code, msg ? `${where}: ${msg}` : `Unable to fetch ${where}: HTTP ${status}`);
}

export async function readText(body: AsyncIterable<Buffer>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) throw new ApiError(502, `Answer too large (more than ${limit} bytes)`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString("utf8");
}
