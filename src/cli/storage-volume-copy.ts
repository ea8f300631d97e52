/**
 * `lodge storage volume copy|move POOL/VOLUME[/SNAPSHOT] POOL/VOLUME`: a copy is a new custom
 * volume whose source is the old one (LXD's `source: {type: copy}`, within a pool or across
 * pools); a move is a POST on the volume naming its new pool and name (a snapshot moved is a
 * copy, then the snapshot deleted, as lxc does). Progress shows on a terminal.
 */
import type { Command } from "commander";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { globalsOf } from "./globals.js";
import { fetchVolume, parsePoolVolume, send, sendWithProgress, volumesUrl, volumeUrl, type VolumeRef, withStorage } from "./storage-ref.js";
import type { StorageVolumePost, StorageVolumesPost, StorageVolumeSnapshot } from "./storage-types.js";

export interface CopyOptions {
  volumeOnly?: boolean;
  refresh?: boolean;
}

/** The POST …/volumes/custom body that copies `src` (its config, description and content type) to `dst`. */
export function copyRequest(src: VolumeRef, dst: VolumeRef, from: { description?: string; config?: Record<string, string>; content_type?: string }, opts: CopyOptions = {}): StorageVolumesPost {
  const body: StorageVolumesPost = {
    name: dst.name,
    type: "custom",
    description: from.description ?? "",
    config: { ...from.config },
    source: { type: "copy", name: src.snapshot === undefined ? src.name : `${src.name}/${src.snapshot}`, pool: src.pool },
  };
  if (from.content_type) body.content_type = from.content_type;
  if (opts.volumeOnly) body.source!.volume_only = true;
  if (opts.refresh) body.source!.refresh = true;
  return body;
}

/** The POST on the source volume that moves it: the pool only when it changes (else a rename). */
export function moveRequest(src: VolumeRef, dst: VolumeRef): StorageVolumePost {
  if (src.pool === dst.pool && src.name === dst.name) throw new UsageError(`"${dst.pool}/${dst.name}" is where the volume already is`);
  return dst.pool === src.pool ? { name: dst.name } : { name: dst.name, pool: dst.pool };
}

async function copy(c: LodgeClient, src: VolumeRef, dst: VolumeRef, opts: CopyOptions, label: string): Promise<void> {
  const { volume } = await fetchVolume(c, { ...src, snapshot: undefined });
  let from: { description?: string; config?: Record<string, string>; content_type?: string } = volume;
  if (src.snapshot !== undefined) {
    const snap = await c.get<StorageVolumeSnapshot>(volumeUrl(src));
    from = { description: snap.description, config: snap.config, content_type: volume.content_type };
  }
  await sendWithProgress(c, "POST", volumesUrl(dst.pool, "custom"), copyRequest(src, dst, from, opts), label);
}

export function registerVolumeCopy(volume: Command): void {
  volume
    .command("copy")
    .alias("cp")
    .description("Copy a custom volume (or a snapshot of one) to a new volume, in the same pool or another")
    .argument("<source>", "POOL/VOLUME or POOL/VOLUME/SNAPSHOT")
    .argument("<target>", "POOL/VOLUME")
    .option("--volume-only", "Copy the volume without its snapshots")
    .option("--refresh", "Refresh and update the existing storage volume copies")
    .action(async (from: string, to: string, opts: CopyOptions, cmd: Command) => {
      const src = parsePoolVolume(from, "source");
      const dst = parsePoolVolume(to, "target");
      await withStorage(globalsOf(cmd), (c) => copy(c, src, dst, opts, "Copying the storage volume"));
      process.stdout.write("Storage volume copied successfully!\n");
    });

  volume
    .command("move")
    .alias("mv")
    .description("Move a custom volume to another pool, or rename it within its pool (not one in use)")
    .argument("<source>", "POOL/VOLUME (or POOL/VOLUME/SNAPSHOT: copied, then deleted)")
    .argument("<target>", "POOL/VOLUME")
    .action(async (from: string, to: string, _opts, cmd: Command) => {
      const src = parsePoolVolume(from, "source");
      const dst = parsePoolVolume(to, "target");
      await withStorage(globalsOf(cmd), async (c) => {
        if (src.snapshot === undefined) return sendWithProgress(c, "POST", volumeUrl(src), moveRequest(src, dst), "Moving the storage volume");
        await copy(c, src, dst, {}, "Moving the storage volume");
        try {
          await send(c, "DELETE", volumeUrl(src));
        } catch (e) {
          throw new Error(`Failed deleting source volume after copy: ${(e as Error).message}`);
        }
      });
      process.stdout.write("Storage volume moved successfully!\n");
    });
}
