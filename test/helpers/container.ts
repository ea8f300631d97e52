/**
 * A raw liblxc container for tests that need a real one before the instance driver exists:
 * unprivileged (its own idmap), no network, a busybox rootfs, `sleep` as init, under a
 * private lxcpath in a temp dir. Stopped and removed in t.after, also when the test fails.
 */
import { randomBytes } from "node:crypto";
import { chmod, lchown, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { runCommand, type RunResult } from "./daemon.js";
import { buildRootfs } from "./images.js";

/** Ids each container maps, from nsid 0. */
export const ID_RANGE = 65536;

/**
 * The host id that container id 0 maps to: root's first range of at least 65536 ids in
 * /etc/subuid and /etc/subgid, else 1000000 (this host has none; LXD's fallback too).
 */
export async function hostIdBase(): Promise<{ uid: number; gid: number; source: "subid" | "fallback" }> {
  const first = async (file: string) => {
    const text = await readFile(file, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      const [name, start, count] = line.split("#")[0]!.trim().split(":");
      if (name === "root" && Number(count) >= ID_RANGE && Number.isSafeInteger(Number(start))) return Number(start);
    }
    return undefined;
  };
  const [uid, gid] = await Promise.all([first("/etc/subuid"), first("/etc/subgid")]);
  if (uid !== undefined && gid !== undefined) return { uid, gid, source: "subid" };
  return { uid: 1_000_000, gid: 1_000_000, source: "fallback" };
}

/** Shifts a tree's ownership by the offsets (lchown: symlinks themselves, never followed). */
export async function shiftTree(root: string, uidOffset: number, gidOffset: number): Promise<void> {
  const st = await lstat(root);
  await lchown(root, st.uid + uidOffset, st.gid + gidOffset);
  // lchown clears set-id bits of regular files; put them back.
  if (st.isFile() && st.mode & 0o6000) await chmod(root, st.mode & 0o7777);
  if (!st.isDirectory()) return;
  for (const e of await readdir(root)) await shiftTree(path.join(root, e), uidOffset, gidOffset);
}

export interface TestContainer {
  name: string;
  lxcpath: string;
  /** The rootfs directory on the host (ownership shifted by the base). */
  rootfs: string;
  base: { uid: number; gid: number; source: "subid" | "fallback" };
  /** The container's init, as the host sees it. */
  pid: number;
  /** Runs a shell command inside with lxc-attach; throws on a non-zero exit. */
  sh(cmd: string): Promise<RunResult>;
  /** Stops the container (idempotent); the rootfs stays until the test ends. */
  stop(): Promise<void>;
}

export interface ContainerOptions {
  /** Fills the rootfs before its ownership is shifted (files as container root sees them). */
  prepare?: (rootfs: string) => Promise<void>;
}

export async function startUnprivilegedContainer(t: TestContext, opts: ContainerOptions = {}): Promise<TestContainer> {
  const dir = await mkdtemp(path.join(tmpdir(), "lodge-ct-"));
  const name = `lodge-test-${randomBytes(4).toString("hex")}`;
  const lxcpath = path.join(dir, "lxc");
  const p = ["-n", name, "-P", lxcpath];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await runCommand("lxc-stop", [...p, "-k"], { allowFail: true });
  };
  t.after(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  // The container's root (an unprivileged host id) must reach its rootfs through this dir.
  await chmod(dir, 0o755);
  const rootfs = await buildRootfs(dir);
  await opts.prepare?.(rootfs);
  const base = await hostIdBase();
  await shiftTree(rootfs, base.uid, base.gid);
  await mkdir(path.join(lxcpath, name), { recursive: true });
  const log = path.join(lxcpath, "lxc.log");
  // No common.conf: its lxcfs hooks need the full PATH, which lxc-start may not get (below).
  const config = [
    `lxc.uts.name = ${name}`,
    `lxc.rootfs.path = dir:${rootfs}`,
    `lxc.idmap = u 0 ${base.uid} ${ID_RANGE}`,
    `lxc.idmap = g 0 ${base.gid} ${ID_RANGE}`,
    "lxc.net.0.type = empty",
    "lxc.mount.auto = proc:mixed sys:mixed",
    "lxc.autodev = 1",
    "lxc.tty.max = 0",
    "lxc.console.path = none",
    "lxc.apparmor.profile = unconfined",
    "lxc.init.cmd = /bin/sleep 100000",
    `lxc.log.file = ${log}`,
    "lxc.log.level = INFO",
  ];
  await writeFile(path.join(lxcpath, name, "config"), config.join("\n") + "\n");
  // liblxc maps ids through newuidmap whenever it is on PATH, and newuidmap allows only the
  // ranges /etc/subuid gives root; without such a range liblxc must write the maps itself.
  const env: Record<string, string> = base.source === "fallback" ? { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin" } : {};
  const lxcStart = (await runCommand("sh", ["-c", "command -v lxc-start"])).stdout.trim();
  const start = await runCommand(lxcStart, [...p, "-d"], { allowFail: true, env });
  if (start.code !== 0) throw new Error(`lxc-start failed: ${start.stderr}\n${await readFile(log, "utf8").catch(() => "")}`);
  await runCommand("lxc-wait", [...p, "-s", "RUNNING", "-t", "10"]);
  const pid = Number((await runCommand("lxc-info", [...p, "-p", "-H"])).stdout.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`lxc-info gave no init pid for ${name}`);
  const sh = async (cmd: string) => {
    const r = await runCommand("lxc-attach", [...p, "--clear-env", "--", "/bin/sh", "-c", cmd], { allowFail: true });
    if (r.code !== 0) throw new Error(`lxc-attach ${JSON.stringify(cmd)} exited ${r.code}: ${r.stderr}`);
    return r;
  };
  return { name, lxcpath, rootfs, base, pid, sh, stop };
}
