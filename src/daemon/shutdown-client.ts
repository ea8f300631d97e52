/**
 * `lodged shutdown`: asks the daemon serving DIR to stop its instances and exit (PUT
 * /internal/shutdown), then waits until it has gone. Exit codes: 0 done, 1 it failed, 3 no
 * daemon answers.
 */
import { request } from "node:http";
import { socketPath } from "../api/paths.js";
import { socketAnswers } from "./socket-probe.js";

function put(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: "PUT", path }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

export async function shutdown(dir: string, timeout: string | undefined): Promise<number> {
  const socket = socketPath(dir);
  if (timeout !== undefined && !/^\d+$/.test(timeout)) {
    process.stderr.write(`lodged: --timeout takes whole seconds, not "${timeout}"\n`);
    return 2;
  }
  let res;
  try {
    res = await put(socket, `/internal/shutdown${timeout !== undefined ? `?timeout=${timeout}` : ""}`);
  } catch (e) {
    process.stderr.write(`lodged: no daemon answers on ${socket} (${(e as Error).message})\n`);
    return 3;
  }
  if (res.status !== 200) {
    const why = (() => {
      try {
        return (JSON.parse(res.body) as { error?: string }).error;
      } catch {
        return undefined;
      }
    })();
    process.stderr.write(`lodged: shutdown refused: ${why ?? `HTTP ${res.status}`}\n`);
    return 1;
  }
  // Its instances are stopped; wait for the daemon itself to close.
  for (let i = 0; i < 300 && (await socketAnswers(socket)); i++) await new Promise((r) => setTimeout(r, 100));
  return 0;
}
