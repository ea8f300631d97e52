/**
 * `lodge snapshot INSTANCE [NAME]` and `lodge restore INSTANCE SNAPSHOT`, as lxc's: a name from
 * the instance's snapshots.pattern when none is given, --reuse to replace one of that name,
 * --expiry / --no-expiry over snapshots.expiry. Also the snapshot side of delete and move
 * (`c1/snap0`), which instance-lifecycle.ts hands here.
 */
import type { Command } from "commander";
import type { InstanceSnapshot } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { checkInstanceName } from "./instance-args.js";
import { instanceUrl, runOperation } from "./instance-ref.js";
import { renderTable, shortTime } from "./output.js";
import type { VerbModule } from "./program.js";

export const snapshotUrl = (instance: string, snap: string) => instanceUrl(instance, `/snapshots/${encodeURIComponent(snap)}`);

/** `c1/snap0` → ["c1", "snap0"]; a word without "/" is not a snapshot. */
export function splitSnapshot(word: string): [string, string] | undefined {
  const i = word.indexOf("/");
  if (i < 0) return undefined;
  const [inst, snap] = [word.slice(0, i), word.slice(i + 1)];
  checkInstanceName(inst, word);
  if (!snap) throw new UsageError(`Invalid snapshot "${word}": expected INSTANCE/SNAPSHOT`);
  return [inst, snap];
}

export async function deleteSnapshot(c: LodgeClient, instance: string, snap: string): Promise<void> {
  await runOperation(c, () => c.delete<Operation>(snapshotUrl(instance, snap)));
}

export async function renameSnapshot(c: LodgeClient, instance: string, snap: string, to: string): Promise<void> {
  await runOperation(c, () => c.post<Operation>(snapshotUrl(instance, snap), { name: to }));
}

/** The "Snapshots:" table of `lodge info`, as lxc info prints it. */
export function snapshotTable(snaps: readonly InstanceSnapshot[]): string {
  if (snaps.length === 0) return "";
  const rows = snaps.map((s) => [s.name, shortTime(s.created_at), s.expires_at.startsWith("0001") ? "" : shortTime(s.expires_at), s.stateful ? "YES" : "NO"]);
  return `\nSnapshots:\n${renderTable(["NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL"], rows)}`;
}

/** `--expiry` as lxc takes it: an RFC 3339 time, or LXD's "1d 2H" form from now. */
function expiryTime(v: string): string {
  if (!Number.isNaN(Date.parse(v))) return new Date(v).toISOString();
  const units: Record<string, (d: Date, n: number) => void> = {
    M: (d, n) => d.setUTCMinutes(d.getUTCMinutes() + n),
    H: (d, n) => d.setUTCHours(d.getUTCHours() + n),
    d: (d, n) => d.setUTCDate(d.getUTCDate() + n),
    w: (d, n) => d.setUTCDate(d.getUTCDate() + 7 * n),
    m: (d, n) => d.setUTCMonth(d.getUTCMonth() + n),
    y: (d, n) => d.setUTCFullYear(d.getUTCFullYear() + n),
  };
  const t = new Date();
  for (const part of v.trim().split(/\s+/)) {
    const m = /^(\d+)([MHdwmy])$/.exec(part);
    if (!m) throw new UsageError(`Invalid expiry "${v}": a time (2026-01-02T15:04:05Z) or a duration like "1d 2H" (M minutes, H, d, w, m months, y)`);
    units[m[2]!]!(t, Number(m[1]));
  }
  return t.toISOString();
}

function registerSnapshot(program: Command): void {
  program
    .command("snapshot")
    .description("Take a snapshot of an instance (named by its snapshots.pattern, snap%d, when no name is given)")
    .argument("<instance>", "Instance name")
    .argument("[name]", "Snapshot name")
    .option("--reuse", "Replace a snapshot of that name if there is one")
    .option("--expiry <when>", 'When the snapshot expires: a time, or a duration such as "1d 2H" (default: snapshots.expiry)')
    .option("--no-expiry", "Never expire, whatever snapshots.expiry says")
    .option("--stateful", "Include the running state (not supported: refused by the server)")
    .action(async (instance: string, name: string | undefined, opts: { reuse?: boolean; expiry?: string | boolean; stateful?: boolean }, c: Command) => {
      checkInstanceName(instance);
      if (name?.includes("/")) throw new UsageError(`Invalid snapshot name "${name}": it cannot contain "/"`);
      const body: Record<string, unknown> = { name: name ?? "", stateful: !!opts.stateful };
      if (opts.expiry === false) body.expires_at = "0001-01-01T00:00:00Z";
      else if (typeof opts.expiry === "string") body.expires_at = expiryTime(opts.expiry);
      await withClient(globalsOf(c), async (client) => {
        if (opts.reuse && name) {
          const exists = await client.get(snapshotUrl(instance, name)).then(() => true, () => false);
          if (exists) await deleteSnapshot(client, instance, name);
        }
        await runOperation(client, () => client.post<Operation>(instanceUrl(instance, "/snapshots"), body));
      });
    });
}

function registerRestore(program: Command): void {
  program
    .command("restore")
    .description("Restore an instance from one of its snapshots (a running instance is stopped, restored and started again)")
    .argument("<instance>", "Instance name")
    .argument("<snapshot>", "Snapshot name")
    .option("--stateful", "Restore the running state too (not supported)")
    .action(async (instance: string, snapshot: string, opts: { stateful?: boolean }, c: Command) => {
      checkInstanceName(instance);
      if (opts.stateful) throw new UsageError("Stateful restores are not supported: snapshots hold no running state");
      const snap = snapshot.includes("/") ? splitSnapshot(snapshot)![1] : snapshot;
      await withClient(globalsOf(c), (client) => runOperation(client, () => client.put<Operation>(instanceUrl(instance), { restore: snap })));
    });
}

export function verb(name: string): VerbModule {
  if (name === "snapshot") return { register: registerSnapshot };
  if (name === "restore") return { register: registerRestore };
  throw new Error(`instance-snapshot: no verb "${name}"`);
}
