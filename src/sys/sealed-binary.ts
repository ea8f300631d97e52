/**
 * Sealed copies of the host programs that run inside a container's pid namespace (the exec
 * agent, and lodge-attach, which enters the container to start it). There each is reachable as
 * /proc/PID/exe, and root of a privileged container is host root: run from the host file, a
 * descriptor kept on that exe could rewrite it once nothing executes it, for every container
 * (runc's CVE-2019-5736). A sealed memfd (native/napi/sealed.c) cannot be changed by anyone.
 *
 * One copy per program and daemon, made on first use and reused by every launch, so a launch
 * copies nothing; a program replaced on disk (an upgrade, a rebuild) gets a new copy.
 */
import { statSync } from "node:fs";
import path from "node:path";
import type { NativeCalls } from "./native.js";

const copies = new Map<string, { identity: string; fd: number }>();

/**
 * A descriptor of a sealed copy of the program at `file`, close-on-exec, owned here: callers
 * use it at once (spawn, or as a child's descriptor) and never close it.
 */
export function sealedBinary(native: NativeCalls, file: string): number {
  const st = statSync(file, { bigint: true });
  const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  const known = copies.get(file);
  if (known?.identity === identity) return known.fd;
  const fd = native.sealedCopy(file, path.basename(file));
  copies.set(file, { identity, fd });
  // Nothing keeps the old number past the synchronous launch that used it.
  if (known) native.close(known.fd);
  return fd;
}
