/**
 * `lodge publish INSTANCE [--alias A]… [key=value…]`: POST /1.0/images from an instance, as
 * `lxc publish` does it: a running instance is refused unless --force, which stops it for the
 * publish and starts it again after; --reuse moves existing aliases to the new image and
 * deletes the image they named when it is left with none (newer lxc's --reuse).
 */
import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { parseProperties, pointAlias } from "./image-upload.js";
import { changeState, fetchInstance } from "./instance-ref.js";
import { waitWithProgress } from "./progress.js";

export interface PublishOpts {
  alias?: string[];
  compression?: string;
  expire?: string;
  reuse?: boolean;
  public?: boolean;
  force?: boolean;
}

interface AliasEntry {
  name: string;
  target: string;
}

/** Publishes `source` (INSTANCE or INSTANCE/SNAPSHOT); returns the new image's fingerprint. */
export async function publish(client: LodgeClient, source: string, properties: Record<string, string>, opts: PublishOpts = {}): Promise<string> {
  const snapshot = source.includes("/");
  const aliases = opts.alias ?? [];
  const existing: AliasEntry[] = [];
  for (const a of aliases) {
    const r = await client.raw<AliasEntry>("GET", `/1.0/images/aliases/${encodeURIComponent(a)}`);
    if (r.status === 200 && r.body.type !== "error") existing.push(r.body.metadata);
  }
  if (existing.length && !opts.reuse)
    throw new UsageError(`Aliases already exist: ${existing.map((a) => a.name).join(", ")} (use --reuse to move them to the new image)`);
  let expires: string | undefined;
  if (opts.expire) {
    const t = new Date(opts.expire);
    if (Number.isNaN(t.getTime())) throw new UsageError(`Invalid --expire "${opts.expire}": use RFC 3339 (2030-01-01T00:00:00Z)`);
    expires = t.toISOString();
  }

  let restart = false;
  if (!snapshot) {
    const { instance } = await fetchInstance(client, source);
    if (instance.status !== "Stopped") {
      if (!opts.force) throw new ApiError(400, "The instance is currently running. Use --force to have it stopped and restarted");
      await changeState(client, source, "stop", { force: true });
      restart = true;
    }
  }
  let fingerprint: string;
  try {
    const fresh = new Set(existing.map((a) => a.name));
    const op = await waitWithProgress(
      client,
      () =>
        client.post<Operation>("/1.0/images", {
          source: { type: snapshot ? "snapshot" : "instance", name: source },
          properties,
          public: !!opts.public,
          ...(expires ? { expires_at: expires } : {}),
          ...(opts.compression ? { compression_algorithm: opts.compression } : {}),
          aliases: aliases.filter((a) => !fresh.has(a)).map((name) => ({ name, description: "" })),
        }),
      { label: "Publishing instance" },
    );
    fingerprint = String((op.metadata as { fingerprint?: unknown } | null)?.fingerprint ?? "");
    if (!fingerprint) throw new ApiError(500, "The publish finished without a fingerprint");
  } finally {
    if (restart) await changeState(client, source, "start");
  }
  // --reuse: the aliases move; an image they leave without any alias goes.
  for (const a of existing) await pointAlias(client, a.name, fingerprint);
  for (const old of new Set(existing.map((a) => a.target))) {
    if (old === fingerprint) continue;
    const img = await client.raw<{ aliases?: unknown[] }>("GET", `/1.0/images/${old}`);
    if (img.status === 200 && img.body.type !== "error" && (img.body.metadata.aliases ?? []).length === 0)
      await client.wait(await client.delete<Operation>(`/1.0/images/${old}`));
  }
  return fingerprint;
}

export function register(program: Command): void {
  program
    .command("publish")
    .description("Make an image from an instance (or, when snapshots exist, a snapshot)")
    .argument("<source>", "INSTANCE or INSTANCE/SNAPSHOT")
    .argument("[properties...]", "Image properties as key=value")
    .option("--alias <alias>", "Alias of the new image (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option("--compression <algorithm>", "gzip (default), zstd, xz, bzip2, lzma or none")
    .option("--expire <date>", "When the image expires (RFC 3339)")
    .option("--reuse", "Move aliases that already exist to the new image (and delete their old image if it has none left)")
    .option("--public", "Make the image public")
    .option("-f, --force", "Stop the instance if it runs (it is started again after)")
    .action(async (source: string, words: string[], opts: PublishOpts, c: Command) => {
      const fp = await withClient(globalsOf(c), (client) => publish(client, source, parseProperties(words), opts));
      process.stdout.write(`Instance published with fingerprint: ${fp}\n`);
    });
}
