import type { Command } from "commander";
import type { Server, ServerUntrusted } from "../api/server.js";
import { globalsOf, withClient } from "./globals.js";
import { printObject, renderDetails } from "./output.js";

export function register(program: Command): void {
  program
    .command("info")
    .description("Show the server's information: a summary, or the whole object with --format json|yaml")
    .action(async (_opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const server = await withClient(g, (c) => c.get<Server | ServerUntrusted>("/1.0"));
      if (g.format === "json" || g.format === "yaml") await printObject(server, g.format);
      else process.stdout.write(renderDetails(summarize(server), g.format));
    });
}

/** The facts a person looks for first, in the order they look for them. */
export function summarize(s: Server | ServerUntrusted): [string, string][] {
  const rows: [string, string][] = [];
  const env = "environment" in s ? s.environment : undefined;
  rows.push(["Server", env ? `${env.server} ${env.server_version}` : "(untrusted: details hidden)"]);
  rows.push(["API", `${s.api_version} (${s.api_status}), ${s.api_extensions.length} extensions`]);
  rows.push(["Auth", s.auth]);
  if (!env) return rows;
  rows.push(["Server name", env.server_name]);
  rows.push(["Server PID", String(env.server_pid)]);
  rows.push(["Project", env.project]);
  rows.push(["OS", `${env.os_name} ${env.os_version}`.trim()]);
  rows.push(["Kernel", `${env.kernel} ${env.kernel_version} (${env.kernel_architecture})`]);
  rows.push(["Architectures", env.architectures.join(", ")]);
  rows.push(["Drivers", pairUp(env.driver, env.driver_version) || "(none)"]);
  rows.push(["Storage", pairUp(env.storage, env.storage_version) || "(none)"]);
  rows.push(["Firewall", env.firewall || "(none)"]);
  rows.push(["Clustered", env.server_clustered ? "yes" : "no"]);
  rows.push(["Addresses", env.addresses.length ? env.addresses.join("\n") : "(unix socket only)"]);
  if (env.certificate_fingerprint) rows.push(["Certificate", env.certificate_fingerprint.slice(0, 12)]);
  const config = Object.entries((s as Server).config ?? {}).sort(([a], [b]) => a.localeCompare(b));
  rows.push(["Config", config.length ? config.map(([k, v]) => `${k}=${v}`).join("\n") : "(none)"]);
  return rows;
}

/** "lxc | qemu" with "5.0.2 | 7.2.22" -> "lxc 5.0.2, qemu 7.2.22". */
function pairUp(names: string, versions: string): string {
  const n = names.split("|").map((x) => x.trim()).filter(Boolean);
  const v = versions.split("|").map((x) => x.trim());
  return n.map((name, i) => (v[i] ? `${name} ${v[i]}` : name)).join(", ");
}
