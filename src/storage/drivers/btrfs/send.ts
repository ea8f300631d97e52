/**
 * Optimized backups of a btrfs volume: `btrfs send` streams, each snapshot incremental on the
 * one before and the volume itself on the last snapshot (as LXD writes them), and `btrfs
 * receive` back. A stream holds one subvolume: nested subvolumes are not carried, so a volume
 * with any is refused rather than exported without them.
 */
import { mkdir, readdir, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { run } from "../../../sys/exec.js";
import type { VolumeType } from "../../driver.js";
import { scratchPath } from "./recovery.js";
import { deleteTree, nestedSubvolumes, snapshotTree } from "./subvolumes.js";

export interface SendPlan {
  /** The volume's subvolume (writable: a read-only snapshot of it is what is sent). */
  volume: string;
  /** Read-only snapshot subvolumes, oldest first. */
  snapshots: { name: string; path: string }[];
  /** Where each stream goes. */
  volumeFile: string;
  snapshotFile(name: string): string;
  signal?: AbortSignal;
}

export async function sendVolume(plan: SendPlan): Promise<void> {
  for (const p of [plan.volume, ...plan.snapshots.map((s) => s.path)]) {
    const nested = await nestedSubvolumes(p);
    if (nested.length) throw new Error(`${p} holds nested subvolumes (${nested.join(", ")}), which an optimized export cannot carry; use a non-optimized one`);
  }
  let parent: string | undefined;
  for (const s of plan.snapshots) {
    await send(s.path, parent, plan.snapshotFile(s.name), plan.signal);
    parent = s.path;
  }
  // send needs a read-only source: a snapshot of the volume as it is now, beside it.
  const frozen = scratchPath(plan.volume, `sending-${randomBytes(4).toString("hex")}`);
  await snapshotTree(plan.volume, frozen, { readonly: true, signal: plan.signal });
  try {
    await send(frozen, parent, plan.volumeFile, plan.signal);
  } finally {
    await deleteTree(frozen);
  }
}

async function send(path: string, parent: string | undefined, file: string, signal?: AbortSignal): Promise<void> {
  await run("btrfs", ["send", "-q", ...(parent ? ["-p", parent] : []), "-f", file, path], { signal, dieWithDaemon: true });
}

export interface ReceivePlan {
  /** A directory in the pool that does not exist yet, for the streams to land in. */
  scratch: string;
  /** Streams of the snapshots, oldest first, and where each received snapshot goes. */
  snapshots: { file: string; path: string }[];
  volumeFile: string;
  /** Where the (writable) volume goes. */
  volume: string;
  signal?: AbortSignal;
}

/**
 * Receives the streams in order (each incremental one finds its parent among those received
 * before), moves the snapshots into place and makes the volume a writable snapshot of what
 * was received. A failure removes everything it made.
 */
export async function receiveVolume(plan: ReceivePlan): Promise<void> {
  const placed: string[] = [];
  await mkdir(plan.scratch, { mode: 0o700 });
  try {
    const received: string[] = [];
    for (const [i, file] of [...plan.snapshots.map((s) => s.file), plan.volumeFile].entries()) {
      plan.signal?.throwIfAborted();
      const into = join(plan.scratch, String(i));
      await mkdir(into);
      await run("btrfs", ["receive", "-q", "-f", file, into], { signal: plan.signal, dieWithDaemon: true });
      const names = await readdir(into);
      if (names.length !== 1) throw new Error(`${file} is not a btrfs send stream of one subvolume`);
      received.push(join(into, names[0]!));
    }
    await snapshotTree(received[received.length - 1]!, plan.volume, { readonly: false, signal: plan.signal });
    placed.push(plan.volume);
    // A read-only subvolume cannot be moved to another directory (EROFS): the received ones
    // are snapshotted into place, and go with the scratch directory.
    for (const [i, s] of plan.snapshots.entries()) {
      await snapshotTree(received[i]!, s.path, { readonly: true, signal: plan.signal });
      placed.push(s.path);
    }
  } catch (e) {
    for (const p of placed) await deleteTree(p).catch(() => {});
    throw e;
  } finally {
    await removeReceived(plan.scratch);
  }
}

/** Removes a receive's scratch directory and what landed in it (also what a crash left). */
export async function removeReceived(scratch: string): Promise<void> {
  for (const d of await readdir(scratch).catch(() => [] as string[])) {
    for (const s of await readdir(join(scratch, d)).catch(() => [] as string[])) await deleteTree(join(scratch, d, s)).catch(() => rm(join(scratch, d, s), { recursive: true, force: true }));
    await rmdir(join(scratch, d)).catch(() => {});
  }
  await rmdir(scratch).catch(() => {});
}

/**
 * Names of an optimized backup's streams, as LXD's btrfs driver writes them under backup/:
 * container.bin (virtual-machine.bin; volume.bin for a custom volume) and one file per
 * snapshot under snapshots/ (volume-snapshots/ for a custom volume).
 */
export function optimizedBackupFiles(type: VolumeType): { volume: string; snapshot(name: string): string } {
  const custom = type === "custom";
  const volume = custom ? "volume.bin" : type === "virtual-machine" ? "virtual-machine.bin" : type === "image" ? "image.bin" : "container.bin";
  return { volume, snapshot: (name) => join(custom ? "volume-snapshots" : "snapshots", `${name}.bin`) };
}
