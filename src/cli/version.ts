import type { Command } from "commander";
import type { Server, ServerUntrusted } from "../api/server.js";
import { LODGE_VERSION } from "../version.js";
import { globalsOf, withClient } from "./globals.js";
import { printObject } from "./output.js";

export function register(program: Command): void {
  program
    .command("version")
    .description("Show the client's version and, when lodged answers, the server's")
    .action(async (_opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const server = await serverVersion(g).catch(() => undefined);
      if (g.format === "json" || g.format === "yaml") {
        await printObject({ client_version: LODGE_VERSION, server_version: server ?? null }, g.format);
        return;
      }
      process.stdout.write(`Client version: ${LODGE_VERSION}\nServer version: ${server ?? "unreachable"}\n`);
    });
}

/** The server's version; an older or untrusted answer without environment gives its API version. */
async function serverVersion(g: ReturnType<typeof globalsOf>): Promise<string> {
  const s = await withClient(g, (c) => c.get<Server | ServerUntrusted>("/1.0"));
  return "environment" in s ? s.environment.server_version : `API ${s.api_version}`;
}
