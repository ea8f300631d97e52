import { link, readFile, unlink, writeFile } from "node:fs/promises";

export class DirectoryBusy extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `another lodged (pid ${pid}) is already running on ${dir}; stop it first ` +
        `(kill ${pid}), or give this one its own directory with LODGE_DIR=/some/other/dir`,
    );
    this.name = "DirectoryBusy";
  }
}

/**
 * One daemon per state directory, held by a pid file created atomically with link(2). A pid
 * file left by a daemon killed with SIGKILL is recognised as stale (no such process, or one
 * that is not lodged) and taken over.
 */
export async function acquireDirLock(pidFile: string, dir: string): Promise<() => Promise<void>> {
  const tmp = `${pidFile}.${process.pid}.tmp`;
  await writeFile(tmp, `${process.pid}\n`, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(tmp, pidFile);
        return async () => {
          const held = await readPid(pidFile);
          if (held === process.pid) await unlink(pidFile).catch(() => {});
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const holder = await readPid(pidFile);
      if (holder !== undefined && holder !== process.pid && (await isLodged(holder))) throw new DirectoryBusy(dir, holder);
      await unlink(pidFile).catch(() => {});
    }
    throw new Error(`could not take the lock ${pidFile}: it keeps reappearing`);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = parseInt(await readFile(file, "utf8"), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

async function isLodged(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return /lodged|daemon\/main/.test(cmdline);
  } catch {
    return false;
  }
}
