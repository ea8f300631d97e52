/**
 * Raw HTTP exchanges on the client's socket for endpoints whose bodies are not JSON envelopes
 * (file contents, log files). The JSON client stays as it is; errors still come back as LXD's
 * envelope, whose message is extracted here.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import type { LodgeClient } from "../client/client.js";

export interface BytesResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The envelope's error message, when the answer is an error. */
  error?: string;
}

/** Sends a request with a raw body (a buffer or a stream); resolves with the answer streaming. */
export function rawRequest(c: LodgeClient, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string | number> = { ...headers };
    if (Buffer.isBuffer(body)) h["content-length"] = body.length;
    const req = request({ socketPath: c.socket, path: c.url(path), method, headers: h }, resolve);
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code && ["ENOENT", "ECONNREFUSED", "EACCES"].includes(e.code)) {
        const err = new Error(`cannot connect to ${c.socket}: is lodged running?`);
        err.name = "ConnectionError";
        reject(err);
      } else reject(e);
    });
    if (body === undefined || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

export async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The error message of an envelope body, if it is one. */
export function envelopeError(body: Buffer, status: number): string | undefined {
  if (status < 400) return undefined;
  try {
    const env = JSON.parse(body.toString("utf8")) as { type?: string; error?: string };
    if (env.type === "error") return env.error;
  } catch {
    // not an envelope
  }
  return `request failed (${status})`;
}

export async function sendBytes(c: LodgeClient, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<BytesResponse> {
  const res = await rawRequest(c, method, path, headers, body);
  const buf = await readAll(res);
  const status = res.statusCode ?? 0;
  return { status, headers: res.headers, body: buf, error: envelopeError(buf, status) };
}

export const getBytes = (c: LodgeClient, path: string) => sendBytes(c, "GET", path);
