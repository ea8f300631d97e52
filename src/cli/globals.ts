import type { Command } from "commander";
import { LodgeClient } from "../client/client.js";
import type { Format } from "./format.js";

/** Options every verb understands (declared once on the program in main.ts). */
export interface GlobalOptions {
  format: Format;
  project?: string;
}

export function globalsOf(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ format?: Format; project?: string }>();
  return { format: o.format ?? "table", project: o.project };
}

/** A client on $LODGE_DIR/unix.socket, bound to --project when given. */
export function clientFor(g: GlobalOptions): LodgeClient {
  return new LodgeClient({ project: g.project });
}

/** Runs `fn` with a client and always releases its sockets. */
export async function withClient<T>(g: GlobalOptions, fn: (c: LodgeClient) => Promise<T>): Promise<T> {
  const client = clientFor(g);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
