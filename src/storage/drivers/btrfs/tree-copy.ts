import { spawnProcess } from "../../../sys/spawn.js";

/**
 * Copies the contents of the directory `src` into the existing directory `dest` with
 * `cp -a --reflink=auto` (owners, modes, xattrs, hard links; blocks shared on btrfs). Unlike
 * run(), an abort resolves only once cp has exited, so the caller's clean-up of `dest` never
 * races a cp that is still writing into it.
 */
export function copyTreeInto(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => Object.assign(new Error("The operation was aborted"), { name: "AbortError", code: "ABORT_ERR" });
    if (signal?.aborted) return reject(aborted());
    // setpriv: cp dies with lodged, so no orphan writes behind the clean-up at the next start.
    const child = spawnProcess("setpriv", ["--pdeathsig", "KILL", "--", "cp", "-a", "--reflink=auto", "--", `${src}/.`, `${dest}/`], { stdio: ["ignore", "ignore", "pipe"] });
    let killer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      child.kill("SIGTERM");
      killer = setTimeout(() => child.kill("SIGKILL"), 2_000);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const err: Buffer[] = [];
    child.stderr?.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => {
      signal?.removeEventListener("abort", onAbort);
      reject(e);
    });
    child.on("close", (code: number | null) => {
      clearTimeout(killer);
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) return reject(aborted());
      if (code === 0) return resolve();
      const msg = Buffer.concat(err).toString().trim().split("\n").slice(-3).join("; ");
      reject(new Error(`copying ${src} failed (cp exit ${code}): ${msg}`));
    });
  });
}
