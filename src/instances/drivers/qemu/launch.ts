/**
 * Running QEMU detached. `-daemonize` forks: the parent returns once the machine is set up (its
 * sockets listen, the pidfile is written) or failed, and the child lives on in its own session,
 * a child of the host's init, so it outlives lodged. Its stderr goes to the VM's qemu.log (with
 * `-D` QEMU keeps stderr open after daemonizing instead of pointing it at /dev/null), so what it
 * says at start and later, including why it failed, is in one file.
 */
import { closeSync, openSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { spawnProcess } from "../../../sys/spawn.js";

export interface LaunchResult {
  code: number;
  /** What QEMU wrote to the log during this launch. */
  output: string;
}

/** Runs QEMU with `args` (which include -daemonize) and waits for its parent to return. */
export async function launchQemu(qemu: string, args: string[], log: string, timeoutMs: number): Promise<LaunchResult> {
  const from = (await stat(log).catch(() => undefined))?.size ?? 0;
  const fd = openSync(log, "a", 0o600);
  let code: number;
  try {
    code = await new Promise<number>((resolve, reject) => {
      const child = spawnProcess(qemu, [...args, "-D", log], {
        env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
        stdio: ["ignore", fd, fd],
        detached: true,
      });
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`QEMU did not finish starting within ${timeoutMs} ms`));
      }, timeoutMs);
      child.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(e.code === "ENOENT" ? new Error(`${qemu} is not installed: install the qemu-system-x86 package`) : e);
      });
      child.on("exit", (c: number | null, sig: string | null) => {
        clearTimeout(timer);
        resolve(c ?? (sig ? 128 : 1));
      });
    });
  } finally {
    closeSync(fd);
  }
  const output = (await readFile(log).catch(() => Buffer.alloc(0))).subarray(from).toString("utf8");
  return { code, output };
}

/** The lines of QEMU's output that say why it failed (its errors, not its warnings). */
export function launchFailure(r: LaunchResult): string {
  const lines = r.output.split("\n").map((l) => l.replace(/^qemu(-system-\w+)?: /, "").trim()).filter(Boolean);
  const errors = lines.filter((l) => !/^warning:/i.test(l));
  return (errors.length ? errors : lines).slice(-3).join("; ") || `QEMU exited with ${r.code}`;
}
