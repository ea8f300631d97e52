/**
 * `lodge info [NAME]`: without a name, the server's summary (info.ts); with one, the
 * instance's: status, type, pid, processes, memory, CPU, disk and network resources, as
 * `lxc info NAME` shows them; `--show-log` adds lxc.log. json/yaml print the full object.
 */
import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import type { InstanceFull } from "../api/instance.js";
import type { Server, ServerUntrusted } from "../api/server.js";
import type { LodgeClient } from "../client/client.js";
import { globalsOf, withClient } from "./globals.js";
import { getBytes } from "./http-stream.js";
import { addresses, byteSize } from "./instance-columns.js";
import { instanceUrl } from "./instance-ref.js";
import { summarize } from "./info.js";
import { printObject, renderDetails } from "./output.js";
import type { VerbModule } from "./program.js";
import { snapshotTable } from "./instance-snapshot.js";

/** The "Key: value" rows of an instance, in lxc info's order. */
export function instanceDetails(i: InstanceFull): [string, string][] {
  const rows: [string, string][] = [
    ["Name", i.name],
    ["Status", (i.state?.status ?? i.status).toUpperCase()],
    ["Type", i.type + (i.ephemeral ? " (ephemeral)" : "")],
    ["Architecture", i.architecture],
  ];
  if (i.project && i.project !== "default") rows.push(["Project", i.project]);
  if (i.location && i.location !== "none") rows.push(["Location", i.location]);
  rows.push(["Created", i.created_at]);
  rows.push(["Last Used", i.last_used_at.startsWith("1970") ? "never" : i.last_used_at]);
  const s = i.state;
  if (s && s.pid > 0) rows.push(["PID", String(s.pid)]);
  if (s && s.status !== "Stopped") {
    rows.push(["Processes", String(s.processes)]);
    const usage: string[] = [];
    usage.push(`CPU usage (in seconds): ${Math.floor(s.cpu.usage / 1e9)}`);
    usage.push(`Memory (current): ${byteSize(s.memory.usage)}`);
    if (s.memory.usage_peak) usage.push(`Memory (peak): ${byteSize(s.memory.usage_peak)}`);
    if (s.memory.swap_usage) usage.push(`Swap (current): ${byteSize(s.memory.swap_usage)}`);
    for (const [dev, d] of Object.entries(s.disk ?? {})) usage.push(`Disk ${dev}: ${byteSize(d.usage)}`);
    rows.push(["Resources", usage.join("\n")]);
    const nets: string[] = [];
    for (const [iface, n] of Object.entries(s.network ?? {})) {
      nets.push(`${iface}: ${n.type} ${n.state}${n.hwaddr ? " " + n.hwaddr : ""}${n.host_name ? " (host " + n.host_name + ")" : ""}`);
      for (const a of n.addresses ?? []) nets.push(`  ${a.family} ${a.address}/${a.netmask} ${a.scope}`);
      nets.push(`  received ${byteSize(n.counters.bytes_received)}, sent ${byteSize(n.counters.bytes_sent)}`);
    }
    if (nets.length) rows.push(["Network", nets.join("\n")]);
    const v4 = addresses(s.network ?? null, "inet");
    if (v4) rows.push(["IPv4", v4]);
  }
  const profiles = i.profiles?.join(", ");
  if (profiles) rows.push(["Profiles", profiles]);
  rows.push(["Snapshots", String(i.snapshots?.length ?? 0)]);
  return rows;
}

async function showLog(c: LodgeClient, name: string): Promise<string> {
  const r = await getBytes(c, instanceUrl(name, "/logs/lxc.log"));
  if (r.status === 404 && /log file/i.test(r.error ?? "")) return "";
  if (r.status >= 400) throw new ApiError(r.status, r.error ?? `cannot read the log of "${name}"`);
  return r.body.toString("utf8");
}

function registerInfo(program: Command): void {
  program
    .command("info")
    .description("Show the server's information, or an instance's: a summary, or the whole object with --format json|yaml")
    .argument("[instance]", "Instance name (default: the server)")
    .option("--show-log", "With an instance: also print its lxc.log")
    .action(async (name: string | undefined, opts: { showLog?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const full = g.format === "json" || g.format === "yaml";
      if (name === undefined) {
        const server = await withClient(g, (c) => c.get<Server | ServerUntrusted>("/1.0"));
        if (full) await printObject(server, g.format);
        else process.stdout.write(renderDetails(summarize(server), g.format as "table" | "csv"));
        return;
      }
      await withClient(g, async (c) => {
        const inst = await c.get<InstanceFull>(instanceUrl(name) + "?recursion=1");
        if (full) await printObject(inst, g.format);
        else {
          process.stdout.write(renderDetails(instanceDetails(inst), g.format as "table" | "csv"));
          if (g.format === "table") process.stdout.write(snapshotTable(inst.snapshots ?? []));
        }
        if (opts.showLog) process.stdout.write(`\nLog:\n\n${await showLog(c, name)}`);
      });
    });
}

export function verb(name: string): VerbModule {
  if (name !== "info") throw new Error(`instance-info: no verb "${name}"`);
  return { register: registerInfo };
}
