import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { badRequest } from "../api/errors.js";
import { run } from "../sys/exec.js";
import { spawnProcess } from "../sys/spawn.js";
import type { Readable } from "node:stream";
import { decompressor, gzipTool, type Compression } from "./format.js";
import { memberChecker, normalizeMember, type ArchiveLayout } from "./members.js";
import { readTar, type MemberType, type TarListing, type TarMember } from "./tar-reader.js";

/**
 * Reads a (possibly compressed) tarball end to end: lists and safety-checks every member, and
 * returns the content of the `capture`d ones. Decompression runs in the host tool (gzip, xz,
 * zstd, bzip2) so a corrupt or truncated stream is reported by the tool that knows the format.
 */
export async function inspectTarball(
  path: string,
  compression: Compression,
  opts: { what: string; layout: ArchiveLayout; capture?: readonly string[]; signal?: AbortSignal },
): Promise<TarListing> {
  const check = memberChecker(opts.what, opts.layout);
  const fh = await open(path, "r");
  try {
    const tool = decompressor(compression);
    if (!tool) return await readTar(fh.createReadStream({ autoClose: false }), { capture: opts.capture, onMember: check });

    // A refused member stops the reader; what the decompressor then says (killed, or "stdout:
    // Connection reset by peer" from its broken pipe) must not replace the refusal.
    let refused = false;
    const onMember = (m: TarMember) => {
      try {
        check(m);
      } catch (e) {
        refused = true;
        throw e;
      }
    };
    const child = spawn(tool[0], tool[1], { stdio: [fh.fd, "pipe", "pipe"], signal: opts.signal });
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, sig) => resolve(code ?? (sig ? 128 : 1)));
    });
    let listing: TarListing;
    try {
      listing = await readTar(child.stdout!, { capture: opts.capture, onMember });
    } catch (e) {
      // The reader stopped midway: its unread output would keep the child's "close" from ever
      // coming (it waits for every stdio stream to end), so drop it along with the child.
      child.stdout!.destroy();
      child.kill("SIGKILL");
      await exited.catch(() => {});
      // A decompressor failure explains a truncated tar stream better than the tar reader can.
      if (!refused && stderr.trim()) throw corrupt(opts.what, tool[0], stderr);
      throw e;
    }
    const code = await exited;
    if (code !== 0) throw corrupt(opts.what, tool[0], stderr);
    return listing;
  } finally {
    await fh.close();
  }
}

function corrupt(what: string, tool: string, stderr: string) {
  const why = stderr.trim().split("\n").slice(-1)[0]?.replace(/^[^:]*:\s*/, "") || "decompression failed";
  return badRequest(`Invalid image: the ${what} is truncated or corrupt (${tool}: ${why})`);
}

/**
 * Lists a SquashFS image with unsquashfs (which also validates its tables, so a truncated or
 * corrupt file is refused) and applies the same member rule as for tarballs.
 */
export async function inspectSquashfs(path: string, what: string, signal?: AbortSignal): Promise<TarMember[]> {
  const r = await run("unsquashfs", ["-n", "-lls", "-d", "", path], { allowFail: true, signal });
  if (r.code !== 0) {
    const why = (r.stderr || r.stdout).trim().split("\n").filter(Boolean).slice(-1)[0] ?? `exit ${r.code}`;
    throw badRequest(`Invalid image: the ${what} is not a valid SquashFS file (${why})`);
  }
  const check = memberChecker(what, "rootfs");
  const members: TarMember[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^([-dlcbps])\S*\s+\S+\s+[\d, ]+\s+\d{4}-\d\d-\d\d \d\d:\d\d (.*)$/.exec(line);
    if (!m) continue;
    const type = SQUASH_TYPES[m[1]!]!;
    // (The root directory is listed with an empty name.)
    let name = m[2]!.replace(/^\//, "") || ".";
    let linkname = "";
    if (type === "symlink") {
      const arrow = name.indexOf(" -> ");
      if (arrow !== -1) [name, linkname] = [name.slice(0, arrow), name.slice(arrow + 4)];
    }
    const member: TarMember = { name, type, linkname, size: 0 };
    check(member);
    members.push(member);
  }
  return members;
}

const SQUASH_TYPES: Record<string, MemberType> = {
  "-": "file",
  d: "dir",
  l: "symlink",
  c: "char",
  b: "block",
  p: "fifo",
  s: "fifo",
};

/** True when the listing has a unified image's container root (rootfs/...). */
export function hasRootfsDir(members: readonly TarMember[]): boolean {
  return members.some((m) => {
    const p = normalizeMember(m.name);
    return typeof p === "string" && (p === "rootfs" || p.startsWith("rootfs/"));
  });
}

/** True when the listing has a unified VM image's disk (rootfs.img). */
export function hasRootfsImg(members: readonly TarMember[]): boolean {
  return members.some((m) => normalizeMember(m.name) === "rootfs.img" && m.type === "file");
}

/** The names of a listing's device nodes, exactly as the archive spells them. */
export function deviceMembers(members: readonly TarMember[]): string[] {
  return [...new Set(members.filter((m) => m.type === "char" || m.type === "block").map((m) => m.name))];
}

/**
 * Extracts a tarball that inspectTarball accepted. GNU tar's own guards stay on (it refuses
 * ".." members and strips leading "/"), as a second line behind the member check. Device
 * nodes are never created (an instance gets its own /dev from liblxc): `exclude` lists their
 * names exactly as stored, matched literally (--no-wildcards) and whole (--anchored), which is
 * sound because the member check accepts only names in the one form tar compares them in.
 */
export async function extractTarball(
  path: string,
  dest: string,
  opts: { exclude: readonly string[]; signal?: AbortSignal; only?: string | readonly string[]; stripComponents?: number },
): Promise<void> {
  await run(
    "tar",
    [
      "--extract",
      "--file",
      path,
      "--directory",
      dest,
      "--numeric-owner",
      "--same-owner",
      "--same-permissions",
      "--xattrs",
      "--xattrs-include=*",
      "--anchored",
      "--no-wildcards",
      ...opts.exclude.map((name) => `--exclude=${name}`),
      ...(opts.stripComponents ? [`--strip-components=${opts.stripComponents}`] : []),
      // Subtrees of the archive (named as the archive spells them), e.g. a backup's instance volume.
      ...(opts.only !== undefined ? ["--", ...(typeof opts.only === "string" ? [opts.only] : opts.only)] : []),
    ],
    { signal: opts.signal },
  );
}

/** Extracts a SquashFS image (already inspected) into dest, which must not exist yet. */
export async function extractSquashfs(path: string, dest: string, signal?: AbortSignal): Promise<void> {
  await run("unsquashfs", ["-n", "-d", dest, path], { signal });
}

/** GNU tar's flag for each compression (tar runs the compressor itself). */
/** tar's compression flags: gzip through pigz where installed, xz and zstd on every core. */
function tarCompress(c: Compression): string[] {
  switch (c) {
    case "none":
      return [];
    case "gzip":
      return gzipTool() === "pigz" ? ["--use-compress-program=pigz -n"] : ["--gzip"];
    case "xz":
      return ["--use-compress-program=xz -T0"];
    case "lzma":
      return ["--lzma"];
    case "bzip2":
      return ["--bzip2"];
    case "zstd":
      return ["--use-compress-program=zstd -q -T0"];
  }
}

/**
 * Writes a tarball of `members` (tar arguments: "-C dir name …", --transform expressions) to a
 * stream, with numeric owners, modes, xattrs and ACLs as they are on disk. `done` settles when
 * tar has exited; it rejects with tar's words if tar failed.
 */
export function createTarball(
  members: readonly string[],
  compression: Compression,
  signal?: AbortSignal,
  opts: { live?: boolean } = {},
): { stdout: Readable; done: Promise<void> } {
  const child = spawnProcess(
    "tar",
    [
      "--create",
      "--file=-",
      "--numeric-owner",
      "--xattrs",
      "--xattrs-include=*",
      "--acls",
      "--sparse",
      // xattrs make the archive pax; its extended headers are named without --transform, so
      // the default name (<dir>/PaxHeaders/<file>) would show scratch paths. Readers ignore it.
      "--pax-option=exthdr.name=PaxHeaders/%f,globexthdr.name=PaxHeaders/global",
      ...tarCompress(compression),
      // A tree in use (a running instance's): a file that changes or goes while it is read is
      // taken as it is, as LXD does, rather than failing the whole backup.
      ...(opts.live ? ["--warning=no-file-changed", "--warning=no-file-removed", "--ignore-failed-read"] : []),
      ...members,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const onAbort = () => child.kill("SIGKILL");
  signal?.addEventListener("abort", onAbort, { once: true });
  const done = new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code: number | null, sig: string | null) => {
      signal?.removeEventListener("abort", onAbort);
      // GNU tar's 1 is "some files differ" (changed while read): a warning where opts.live.
      if (code === 0 || (code === 1 && opts.live)) resolve();
      else reject(new Error(`tar failed (${code ?? sig}): ${stderr.trim().split("\n").slice(-3).join("; ")}`));
    });
  });
  done.catch(() => {});
  return { stdout: child.stdout!, done };
}
