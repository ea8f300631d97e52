/**
 * `lodge export` and `lodge import`: an instance to a backup tarball in LXD's format and back,
 * as `lxc export` / `lxc import` do it (a backup is made on the server, downloaded, then
 * deleted; an import uploads the tarball as the body of POST /1.0/instances).
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { ProgressTracker, progressText as transferText } from "../images/progress.js";
import { globalsOf, withClient } from "./globals.js";
import { getRaw } from "./image-export.js";
import { instanceUrl } from "./instance-ref.js";
import { ProgressRenderer, waitWithProgress } from "./progress.js";
import type { VerbModule } from "./program.js";

interface ExportOpts {
  instanceOnly?: boolean;
  optimizedStorage?: boolean;
  compression?: string;
}

/** Makes a backup of `name`, downloads it to `file`, and deletes it on the server. */
export async function exportInstance(client: LodgeClient, name: string, file: string, opts: ExportOpts = {}): Promise<void> {
  const op = await waitWithProgress(
    client,
    () =>
      client.post<Operation>(instanceUrl(name, "/backups"), {
        name: "",
        expires_at: new Date(Date.now() + 24 * 3600_000).toISOString(),
        instance_only: !!opts.instanceOnly,
        optimized_storage: !!opts.optimizedStorage,
        ...(opts.compression ? { compression_algorithm: opts.compression } : {}),
      }),
    { label: "Backing up instance" },
  );
  const backup = op.resources?.backups?.[0];
  if (!backup) throw new ApiError(500, "The backup operation named no backup");
  const url = instanceUrl(name, `/backups/${encodeURIComponent(backup)}`);
  const renderer = new ProgressRenderer();
  const tmp = `${file}.partial-${process.pid}`;
  try {
    const res = await getRaw(client, `${url}/export`);
    const length = Number(res.headers["content-length"]);
    const tracker = new ProgressTracker("backup", (p) => renderer.show(`Exporting the backup: ${transferText(p)}`), Number.isFinite(length) ? length : undefined);
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        tracker.add(chunk.length);
        cb(null, chunk);
      },
    });
    if (file === "-") await pipeline(res, count, process.stdout);
    else {
      await pipeline(res, count, createWriteStream(tmp, { mode: 0o600 }));
      await rename(tmp, file);
    }
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  } finally {
    renderer.done();
    await client.wait(await client.delete<Operation>(url)).catch(() => {});
  }
}

/** Uploads a backup tarball as a new instance; returns the operation's result. */
export async function importInstance(client: LodgeClient, file: string, opts: { name?: string; pool?: string } = {}): Promise<Operation> {
  const size = (await stat(file).catch(() => {
    throw new ApiError(400, `Backup file "${file}" not found`);
  })).size;
  const renderer = new ProgressRenderer();
  const tracker = new ProgressTracker("backup", (p) => renderer.show(`Importing instance: ${transferText(p)}`), size);
  const body = createReadStream(file).pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        tracker.add(chunk.length);
        cb(null, chunk);
      },
    }),
  );
  const headers: Record<string, string> = { "Content-Type": "application/octet-stream", "Content-Length": String(size) };
  if (opts.name) headers["X-LXD-name"] = opts.name;
  if (opts.pool) headers["X-LXD-pool"] = opts.pool;
  return waitWithProgress(
    client,
    async () => {
      const r = await client.raw<Operation>("POST", "/1.0/instances", undefined, { stream: body, headers });
      if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
      return r.body.metadata;
    },
    { renderer, label: "Importing instance" },
  );
}

export function verb(name: "export" | "import"): VerbModule {
  return {
    register(program: Command) {
      if (name === "export")
        program
          .command("export")
          .description("Export an instance and its snapshots as a backup tarball in LXD's format")
          .argument("<instance>", "Instance name")
          .argument("[file]", "Where to write it (default: backup.tar.gz; - for stdout)")
          .option("--instance-only", "Leave the instance's snapshots out")
          .option("--optimized-storage", "Use the storage driver's own format (btrfs send); the pool's driver must have it")
          .option("--compression <algorithm>", "gzip (default), zstd, xz, bzip2, lzma or none")
          .action(async (instance: string, file: string | undefined, opts: ExportOpts, c: Command) => {
            await withClient(globalsOf(c), (client) => exportInstance(client, instance, file ?? "backup.tar.gz", opts));
            if (file !== "-") process.stderr.write("Backup exported successfully!\n");
          });
      else
        program
          .command("import")
          .description("Create an instance from a backup tarball (lodge export, lxc export)")
          .argument("<file>", "The backup tarball")
          .argument("[name]", "The new instance's name (default: the backup's)")
          .option("-s, --storage <pool>", "Storage pool to put it in")
          .action(async (file: string, newName: string | undefined, opts: { storage?: string }, c: Command) => {
            await withClient(globalsOf(c), (client) => importInstance(client, file, { name: newName, pool: opts.storage }));
          });
    },
  };
}
