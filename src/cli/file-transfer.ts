/**
 * `lodge file push|pull|delete|edit` over LXD's file API: GET/POST/DELETE
 * /1.0/instances/NAME/files?path=, with ownership, mode and type in X-LXD-* headers; a GET of a
 * directory answers a JSON list of its entries. Recursion (-r) walks the tree here, in the
 * client, as lxc does.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, readlink, symlink, unlink } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { ApiError } from "../api/errors.js";
import type { LodgeClient } from "../client/client.js";
import { readAll, rawRequest, sendBytes, envelopeError } from "./http-stream.js";
import type { InstancePath } from "./instance-args.js";
import { instanceUrl } from "./instance-ref.js";

export interface Ownership {
  uid?: number;
  gid?: number;
  mode?: number;
}

export const filesUrl = (p: InstancePath) => instanceUrl(p.instance, `/files?path=${encodeURIComponent(p.path)}`);

/** Where a pushed source lands: into the target when it is a directory (ends in "/", or many sources). */
export function pushTarget(source: string, target: InstancePath, intoDirectory: boolean): InstancePath {
  if (!intoDirectory) return target;
  return { instance: target.instance, path: posix.join(target.path, basename(source.replace(/\/+$/, "")) || "/") };
}

/** Where a pulled file lands locally: into `dest` when it is a directory. */
export function pullTarget(source: InstancePath, dest: string, intoDirectory: boolean): string {
  return intoDirectory ? join(dest, posix.basename(source.path) || source.instance) : dest;
}

/** X-LXD-* headers for a write. */
export function fileHeaders(type: "file" | "directory" | "symlink", own: Ownership): Record<string, string> {
  const h: Record<string, string> = { "X-LXD-type": type, "X-LXD-write": "overwrite", "content-type": "application/octet-stream" };
  if (own.uid !== undefined) h["X-LXD-uid"] = String(own.uid);
  if (own.gid !== undefined) h["X-LXD-gid"] = String(own.gid);
  if (own.mode !== undefined) h["X-LXD-mode"] = (own.mode & 0o7777).toString(8).padStart(4, "0");
  return h;
}

async function post(c: LodgeClient, p: InstancePath, headers: Record<string, string>, body: Buffer): Promise<void> {
  const r = await sendBytes(c, "POST", filesUrl(p), headers, body);
  if (r.status >= 400) throw new ApiError(r.status, `${p.instance}${p.path}: ${r.error}`);
}

/** mkdir -p inside the instance: every missing parent of `p` (existing ones are left alone). */
export async function mkdirParents(c: LodgeClient, p: InstancePath, own: Ownership): Promise<void> {
  const parts = p.path.split("/").filter(Boolean).slice(0, -1);
  let cur = "";
  for (const part of parts) {
    cur += "/" + part;
    const at = { instance: p.instance, path: cur };
    const st = await remoteType(c, at);
    if (st === "directory") continue;
    if (st) throw new ApiError(400, `${p.instance}${cur} exists and is not a directory`);
    await post(c, at, fileHeaders("directory", { ...own, mode: 0o755 }), Buffer.alloc(0));
  }
}

/** The type of a path in the instance, or undefined when it does not exist. */
export async function remoteType(c: LodgeClient, p: InstancePath): Promise<string | undefined> {
  const res = await rawRequest(c, "GET", filesUrl(p));
  res.resume();
  await new Promise((r) => res.once("end", r));
  if (res.statusCode === 404) return undefined;
  const t = res.headers["x-lxd-type"];
  return typeof t === "string" ? t : undefined;
}

export interface PushOptions extends Ownership {
  recursive?: boolean;
  parents?: boolean;
}

/** Pushes a local file (or, with -r, a tree) to `target`. */
export async function pushPath(c: LodgeClient, source: string, target: InstancePath, opts: PushOptions): Promise<void> {
  const st = await lstat(source);
  if (opts.parents) await mkdirParents(c, target, opts);
  const own = (mode: number): Ownership => ({ uid: opts.uid ?? st.uid, gid: opts.gid ?? st.gid, mode: opts.mode ?? mode });
  if (st.isDirectory()) {
    if (!opts.recursive) throw new ApiError(400, `${source} is a directory: use -r to push it`);
    if ((await remoteType(c, target)) !== "directory") await post(c, target, fileHeaders("directory", own(st.mode)), Buffer.alloc(0));
    for (const entry of await readdir(source))
      await pushPath(c, join(source, entry), { instance: target.instance, path: posix.join(target.path, entry) }, { ...opts, parents: false });
  } else if (st.isSymbolicLink()) {
    await post(c, target, fileHeaders("symlink", own(0o777)), Buffer.from(await readlink(source)));
  } else if (st.isFile()) {
    const res = await rawRequest(c, "POST", filesUrl(target), { ...fileHeaders("file", own(st.mode)), "content-length": String(st.size) }, createReadStream(source));
    const body = await readAll(res);
    if ((res.statusCode ?? 0) >= 400) throw new ApiError(res.statusCode!, `${target.instance}${target.path}: ${envelopeError(body, res.statusCode!)}`);
  } else {
    throw new ApiError(400, `${source} is not a regular file, directory or symlink`);
  }
}

/** Pushes bytes (file edit, stdin) with the given ownership. */
export function pushBytes(c: LodgeClient, target: InstancePath, data: Buffer, own: Ownership): Promise<void> {
  return post(c, target, fileHeaders("file", own), data);
}

export interface PulledFile {
  type: string;
  uid?: number;
  gid?: number;
  mode?: number;
}

/** Reads a remote file into memory (file edit). */
export async function pullBytes(c: LodgeClient, source: InstancePath): Promise<{ data: Buffer; info: PulledFile }> {
  const r = await sendBytes(c, "GET", filesUrl(source));
  if (r.status >= 400) throw new ApiError(r.status, `${source.instance}${source.path}: ${r.error}`);
  const info = headerInfo(r.headers);
  if (info.type !== "file") throw new ApiError(400, `${source.instance}${source.path} is a ${info.type}, not a file`);
  return { data: r.body, info };
}

function headerInfo(h: Record<string, string | string[] | undefined>): PulledFile {
  const num = (k: string) => (typeof h[k] === "string" && h[k] !== "" ? Number(h[k]) : undefined);
  const mode = typeof h["x-lxd-mode"] === "string" ? parseInt(h["x-lxd-mode"], 8) : undefined;
  return { type: typeof h["x-lxd-type"] === "string" ? h["x-lxd-type"] : "file", uid: num("x-lxd-uid"), gid: num("x-lxd-gid"), mode };
}

/** Pulls a remote path to `dest` ("-" is stdout); directories need -r. */
export async function pullPath(c: LodgeClient, source: InstancePath, dest: string, opts: { recursive?: boolean }): Promise<void> {
  const res = await rawRequest(c, "GET", filesUrl(source));
  const status = res.statusCode ?? 0;
  if (status >= 400) throw new ApiError(status, `${source.instance}${source.path}: ${envelopeError(await readAll(res), status)}`);
  const info = headerInfo(res.headers);
  if (info.type === "directory") {
    const listing = JSON.parse((await readAll(res)).toString("utf8")) as { metadata?: string[] };
    if (!opts.recursive) throw new ApiError(400, `${source.instance}${source.path} is a directory: use -r to pull it`);
    await mkdir(dest, { recursive: true, mode: info.mode });
    for (const entry of listing.metadata ?? [])
      await pullPath(c, { instance: source.instance, path: posix.join(source.path, entry) }, join(dest, entry), opts);
    return;
  }
  if (info.type === "symlink") {
    const target = (await readAll(res)).toString("utf8");
    if (dest === "-") return void process.stdout.write(target + "\n");
    await unlink(dest).catch(() => {});
    await symlink(target, dest);
    return;
  }
  if (dest === "-") {
    await pipeline(res, process.stdout, { end: false });
    return;
  }
  await pipeline(res, createWriteStream(dest, { mode: info.mode ?? 0o644 }));
}

export async function deletePath(c: LodgeClient, p: InstancePath): Promise<void> {
  const r = await sendBytes(c, "DELETE", filesUrl(p));
  if (r.status >= 400) throw new ApiError(r.status, `${p.instance}${p.path}: ${r.error}`);
}
