import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { Response } from "../api/response.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { waitWithProgress } from "./progress.js";

const METHODS = ["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS"];

interface QueryOptions {
  request: string;
  data?: string;
  wait?: boolean;
  raw?: boolean;
}

export function register(program: Command): void {
  program
    .command("query")
    .description("Send a raw request to the API and print the answer's metadata as JSON")
    .argument("<path>", "API path, e.g. /1.0 or /1.0/operations?recursion=1")
    .option("-X, --request <method>", "HTTP method", "GET")
    .option("-d, --data <json>", 'Request body (JSON); "-" reads it from stdin')
    .option("--wait", "Wait for an operation the request started, then print its metadata")
    .option("--raw", "Print the whole response envelope")
    .addHelpText(
      "after",
      `
Examples:
  lodge query /1.0
  lodge query -X PATCH -d '{"config":{"user.x":"1"}}' /1.0
  lodge query -X DELETE --wait /1.0/instances/c1`,
    )
    .action(async (path: string, opts: QueryOptions, cmd: Command) => {
      const method = opts.request.toUpperCase();
      if (!METHODS.includes(method)) throw new UsageError(`Invalid method "${opts.request}": use ${METHODS.join(", ")}`);
      if (!path.startsWith("/")) throw new UsageError(`Invalid path "${path}": API paths start with "/", e.g. /1.0`);
      const body = await parseBody(opts.data);
      await withClient(globalsOf(cmd), (c) => query(c, method, path, body, opts));
    });
}

async function query(c: LodgeClient, method: string, path: string, body: unknown, opts: QueryOptions): Promise<void> {
  let answer: Response | undefined;
  const send = async () => {
    const r = await c.raw(method, path, body);
    answer = r.body;
    if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
    return r.body.type === "async" ? (r.body.metadata as Operation) : null;
  };
  let op: Operation | null = null;
  try {
    op = opts.wait ? await waitWithProgress(c, send) : await send();
  } catch (e) {
    if (opts.raw && answer) print(answer);
    throw e;
  }
  if (opts.raw) print(answer);
  else if (opts.wait && op) print(op.metadata);
  else print(answer?.metadata);
}

/** JSON as lxc prints it (tab-indented); nothing for an empty answer. */
function print(value: unknown): void {
  if (value === null || value === undefined) return;
  if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) return;
  process.stdout.write(JSON.stringify(value, null, "\t") + "\n");
}

async function parseBody(data: string | undefined): Promise<unknown> {
  if (data === undefined) return undefined;
  const text = data === "-" ? await readStdin() : data;
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`Invalid JSON in --data: ${(e as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
