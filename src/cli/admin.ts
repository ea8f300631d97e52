import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import { UsageError } from "./exit.js";
import { clientFor, globalsOf } from "./globals.js";

export function register(program: Command): void {
  const admin = program.command("admin").description("Administer the daemon");

  admin
    .command("waitready")
    .description("Wait until lodged answers on its socket (exit 0), or give up after --timeout (exit 1)")
    .option("-t, --timeout <seconds>", "Give up after this many seconds (default: wait forever)")
    .action(async (opts: { timeout?: string }, cmd: Command) => {
      const seconds = opts.timeout === undefined ? Infinity : Number(opts.timeout);
      if (Number.isNaN(seconds) || seconds < 0) throw new UsageError(`Invalid --timeout "${opts.timeout}": give seconds`);
      await waitReady(globalsOf(cmd), seconds * 1000);
    });
}

/** Polls GET /1.0 with growing pauses (10 ms doubling to 500 ms) until it answers. */
async function waitReady(g: ReturnType<typeof globalsOf>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  let last = "";
  for (;;) {
    const client = clientFor(g);
    try {
      await client.get("/1.0");
      return;
    } catch (e) {
      last = (e as Error).message;
    } finally {
      client.close();
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new ApiError(504, `lodged is not ready after ${timeoutMs / 1000} seconds (${last})`);
    await new Promise((r) => setTimeout(r, Math.min(delay, left)));
    delay = Math.min(delay * 2, 500);
  }
}
