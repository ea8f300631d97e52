import { lstat } from "node:fs/promises";
import type { Readable } from "node:stream";

/** LXD's default PATH for exec; ":/snap/bin" joins it when the instance has /snap. */
export const EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A passwd file larger than this is not read for a home directory (the instance controls it). */
const MAX_PASSWD_BYTES = 4 << 20;

export interface ExecEnvironmentInput {
  /** The user the command runs as (the request's `user`; LXD's default is 0). */
  uid: number;
  /** environment.* keys of the instance, then the request's own environment (which wins). */
  env: Record<string, string>;
  /** The request's cwd; "" or absent: the user's home. */
  cwd?: string;
  /** Whether /snap exists in the instance. */
  hasSnap: () => Promise<boolean>;
  /** The instance's /etc/passwd, read inside the instance (never through host paths). */
  passwd: () => Promise<Readable>;
}

/**
 * The environment and working directory of an exec, as LXD 5.0 sets them: PATH (with /snap/bin
 * when the instance has /snap), LANG=C.UTF-8, and for root HOME=/root and USER=root, each only
 * when not given; the cwd defaults to HOME, else "/". For another uid, Lodge also takes HOME and
 * USER from the instance's /etc/passwd when it has an entry for it (LXD leaves them unset),
 * so the command starts in that user's home as a login would. Both exec paths (the agent and
 * lxc-attach) receive the result whole, so they cannot differ.
 */
export async function execEnvironment(input: ExecEnvironmentInput): Promise<{ env: Record<string, string>; cwd: string }> {
  const env = { ...input.env };
  if (env.PATH === undefined) env.PATH = (await input.hasSnap()) ? `${EXEC_PATH}:/snap/bin` : EXEC_PATH;
  if (input.uid === 0) {
    env.HOME ??= "/root";
    env.USER ??= "root";
  } else if (env.HOME === undefined || env.USER === undefined) {
    const entry = await passwdEntry(await input.passwd().catch(() => undefined), input.uid);
    if (entry) {
      env.HOME ??= entry.home;
      env.USER ??= entry.name;
    }
  }
  env.LANG ??= "C.UTF-8";
  return { env, cwd: input.cwd || env.HOME || "/" };
}

/** The instance's /etc/passwd may say anything: a bounded read, and only sane fields taken. */
export async function passwdEntry(file: Readable | undefined, uid: number): Promise<{ name: string; home: string } | undefined> {
  if (!file) return undefined;
  let text = "";
  try {
    for await (const chunk of file) {
      text += (chunk as Buffer).toString("utf8");
      if (text.length > MAX_PASSWD_BYTES) {
        file.destroy();
        return undefined;
      }
    }
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || f[2] !== String(uid)) continue;
    const [name, home] = [f[0]!, f[5]!];
    if (!/^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/.test(name) || !home.startsWith("/") || home.includes("\0")) return undefined;
    return { name, home };
  }
  return undefined;
}

/** /snap of a running instance, seen through its init's root; lstat follows no link the instance made. */
export function snapIn(initPid: number): () => Promise<boolean> {
  return () => lstat(`/proc/${initPid}/root/snap`).then(() => true, () => false);
}
