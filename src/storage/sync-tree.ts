import { run } from "../sys/exec.js";

/**
 * Makes `dest` hold exactly what `src` holds: owners, modes, links, xattrs, ACLs, sparse files;
 * only what differs is written. How a volume's snapshots are carried into a new volume when the
 * driver contract has no "put this tree in as a snapshot": each state is synced into the new
 * volume's tree, then snapshotted there.
 */
export async function syncTree(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  // --checksum: rsync's quick check (size and mtime) misses a file rewritten with the same size
  // within the same second, and a copy must be exact.
  await run("rsync", ["-aHAXS", "--checksum", "--numeric-ids", "--delete", "--", `${src}/`, `${dest}/`], { signal, dieWithDaemon: true });
}
