import { readdir, readFile } from "node:fs/promises";
import { PassThrough, type Writable } from "node:stream";

/** How long input is held at most; after that it flows whatever happened (never held forever). */
const READY_LIMIT_MS = 10_000;

/**
 * Resolves once the lxc-attach that `script` runs (as script's child) has a child of its own:
 * by then it has put its terminal into raw mode, flushing it (liblxc sets the terminal up
 * before it forks towards the container), so input written afterwards is kept. Also resolves
 * when the process ends or after READY_LIMIT_MS. Reads /proc with a short backoff: lxc-attach
 * gets there within milliseconds, and only an exec on a pty waits for it.
 */
export async function attachReady(scriptPid: number, lxcAttach: string, exited: Promise<unknown>): Promise<void> {
  if (scriptPid <= 0) return;
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + READY_LIMIT_MS;
  let delay = 1;
  while (!done && Date.now() < deadline) {
    for (const kid of await childrenOf(scriptPid))
      if ((await argv0(kid)) === lxcAttach && (await childrenOf(kid)).length > 0) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 20);
  }
}

/**
 * A process's argv[0]. script's child is a shell (its child: stty) before it execs lxc-attach,
 * whose comm is no help (liblxc re-executes itself from a memfd), but whose argv is kept.
 */
async function argv0(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0")[0]!;
}

/** Children of every thread of a process (liblxc may run threads). */
async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, "utf8").catch(() => "")));
  return lists.join(" ").split(/\s+/).filter(Boolean).map(Number);
}

/** A stream that holds what is written to it until `ready`, then passes everything on to `to`. */
export function heldUntil(ready: Promise<void>, to: Writable): Writable {
  const held = new PassThrough();
  held.on("error", () => undefined);
  void ready.then(() => held.pipe(to));
  return held;
}
