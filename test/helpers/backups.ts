/**
 * What the backup tests look at: every inode of a tree, the store's keys, and the scratch and
 * volume directories a failed or interrupted import must not leave.
 */
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { databasePath } from "../../src/api/paths.js";
import { runCommand } from "./daemon.js";

/** Every inode of a tree: type, mode, owner, and content hash or link target. */
export async function manifest(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      const head = `${r} ${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.push(`${head} -> ${await readlink(p)}`);
      else if (st.isFile()) out.push(`${head} ${createHash("sha256").update(await readFile(p)).digest("hex")}`);
      else out.push(head);
      if (st.isDirectory()) await walk(p, r);
    }
  };
  await walk(root, "");
  return out;
}

/** The keys of the daemon's store under `prefix`, read (read-only) while it runs. */
export function storeKeys(dir: string, prefix: string): string[] {
  const db = new Database(databasePath(dir), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT key FROM docs WHERE key >= ? AND key < ? ORDER BY key").all(prefix, `${prefix}\uffff`) as { key: string }[]).map((r) => r.key);
  } finally {
    db.close();
  }
}

/** Directory entries, sorted; [] when it does not exist. */
export async function ls(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

/** Rewrites a backup tarball with python's tarfile: `python` edits `members` (a list of (TarInfo, data)). */
export async function craft(src: string, dest: string, python: string): Promise<void> {
  const script = `
import tarfile, io, sys
src, dest = sys.argv[1], sys.argv[2]
with tarfile.open(src) as tin:
    members = [(m, tin.extractfile(m).read() if m.isfile() else None) for m in tin.getmembers()]
def add(name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    for k, v in kw.items(): setattr(ti, k, v)
    if ti.type == tarfile.REGTYPE: ti.size = len(data)
    members.append((ti, data if ti.type == tarfile.REGTYPE else None))
${python}
with tarfile.open(dest, "w:gz", format=tarfile.GNU_FORMAT) as tout:
    for m, data in members:
        tout.addfile(m, io.BytesIO(data) if data is not None else None)
`;
  await runCommand("python3", ["-c", script, src, dest]);
}
