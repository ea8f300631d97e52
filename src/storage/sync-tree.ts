import { run } from "../sys/exec.js";

/**
 * Makes `dest` hold exactly what `src` holds: owners, modes, links, xattrs, ACLs, sparse files;
 * only what differs is written. How a volume's snapshots are carried into a new volume when the
 * driver contract has no "put this tree in as a snapshot": each state is synced into the new
 * volume's tree, then snapshotted there.
 */
export async function syncTree(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  await run("rsync", ["-aHAXS", "--numeric-ids", "--delete", "--", `${src}/`, `${dest}/`], { signal, dieWithDaemon: true });
}
