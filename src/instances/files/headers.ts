/**
 * LXD's file API headers and answer shapes (GET/POST .../files?path=), as LXD 5.0 has them:
 *
 * - POST reads `X-LXD-uid` and `X-LXD-gid` (decimal; absent or -1: unset), `X-LXD-mode`
 *   (octal with a leading 0 as the lxc client and pylxd send it, "0644"; decimal otherwise;
 *   only the 0777 bits count), `X-LXD-type` (file|directory|symlink; absent: file) and
 *   `X-LXD-write` (overwrite|append; absent: overwrite). Owner and mode apply only to what
 *   the request creates. LXD 5.0 silently ignores a malformed id or mode; Lodge answers 400
 *   naming the header, since a client that sent one meant something by it.
 * - GET answers with `X-LXD-uid`, `X-LXD-gid`, `X-LXD-mode` ("%04o" of the 0777 bits) and
 *   `X-LXD-type` for the path itself (lstat): a file's raw bytes; a symlink's target made
 *   absolute against the link's directory and cleaned, as raw bytes (the lxc client follows
 *   it with another GET); a directory's entry names as a sync JSON response.
 */
import path from "node:path";
import { ApiError } from "../../api/errors.js";
import { syncResponse, type SyncResponse } from "../../api/response.js";
import type { FileStat, FileType } from "./fileio.js";

export type WriteMode = "overwrite" | "append";

/** What a POST asks for; undefined fields were not given. */
export interface FilePush {
  uid?: number;
  gid?: number;
  mode?: number;
  type: FileType;
  write: WriteMode;
}

/** Request headers as Node gives them (lower-cased names) or any plain record. */
export type HeaderBag = Record<string, string | string[] | undefined>;

const FILE_TYPES: readonly FileType[] = ["file", "directory", "symlink"];
const WRITE_MODES: readonly WriteMode[] = ["overwrite", "append"];
const MAX_ID = 0xfffffffe;

function header(headers: HeaderBag, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== lower || v === undefined) continue;
    const s = Array.isArray(v) ? v[0] : v;
    return s === undefined ? undefined : s.trim();
  }
  return undefined;
}

function parseId(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw === "" || raw === "-1") return undefined;
  if (!/^\+?\d+$/.test(raw)) throw new ApiError(400, `Invalid ${name} header "${raw}": expected a decimal id`);
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id > MAX_ID) throw new ApiError(400, `Invalid ${name} header "${raw}": out of range`);
  return id;
}

/** "0644" is octal, "420" decimal (strconv.ParseInt base 0 after LXD's Atoi check). */
export function parseMode(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === "" || raw === "-1") return undefined;
  let mode: number;
  if (/^0[0-7]*$/.test(raw)) mode = parseInt(raw, 8);
  else if (/^\+?[1-9]\d*$/.test(raw)) mode = Number(raw);
  else throw new ApiError(400, `Invalid X-LXD-mode header "${raw}": expected an octal mode with a leading 0, like 0644`);
  if (!Number.isSafeInteger(mode)) throw new ApiError(400, `Invalid X-LXD-mode header "${raw}": out of range`);
  return mode & 0o777;
}

/** Parses a POST's X-LXD-* headers; a bad value is a 400 naming the header. */
export function parseFileHeaders(headers: HeaderBag): FilePush {
  const type = header(headers, "X-LXD-type") || "file";
  if (!(FILE_TYPES as readonly string[]).includes(type)) throw new ApiError(400, `Bad file type: ${type}`);
  const write = header(headers, "X-LXD-write") || "overwrite";
  if (!(WRITE_MODES as readonly string[]).includes(write)) throw new ApiError(400, `Bad file write mode: ${write}`);
  const push: FilePush = { type: type as FileType, write: write as WriteMode };
  const uid = parseId(header(headers, "X-LXD-uid"), "X-LXD-uid");
  const gid = parseId(header(headers, "X-LXD-gid"), "X-LXD-gid");
  const mode = parseMode(header(headers, "X-LXD-mode"));
  if (uid !== undefined) push.uid = uid;
  if (gid !== undefined) push.gid = gid;
  if (mode !== undefined) push.mode = mode;
  return push;
}

/** The X-LXD-* headers describing a path in a GET answer. */
export function fileHeaders(stat: Pick<FileStat, "uid" | "gid" | "mode" | "type">): Record<string, string> {
  return {
    "X-LXD-uid": String(stat.uid),
    "X-LXD-gid": String(stat.gid),
    "X-LXD-mode": (stat.mode & 0o777).toString(8).padStart(4, "0"),
    "X-LXD-type": stat.type,
  };
}

/** The headers a client would send to push something with this owner and mode. */
export function pushHeaders(push: Partial<FilePush>): Record<string, string> {
  const h: Record<string, string> = {};
  if (push.uid !== undefined) h["X-LXD-uid"] = String(push.uid);
  if (push.gid !== undefined) h["X-LXD-gid"] = String(push.gid);
  if (push.mode !== undefined) h["X-LXD-mode"] = (push.mode & 0o777).toString(8).padStart(4, "0");
  if (push.type !== undefined) h["X-LXD-type"] = push.type;
  if (push.write !== undefined) h["X-LXD-write"] = push.write;
  return h;
}

/** A symlink's GET body: its target made absolute against the link's directory, cleaned. */
export function symlinkAnswerTarget(linkPath: string, target: string): string {
  return path.posix.resolve(path.posix.dirname(path.posix.resolve("/", linkPath)), target);
}

/** Content-Disposition for a file: LXD's `inline;filename=NAME`, RFC 5987 when NAME needs it. */
export function contentDisposition(filePath: string): string {
  const name = path.posix.basename(filePath) || "file";
  if (/^[\x21-\x7e]+$/.test(name) && !/[";\\]/.test(name)) return `inline;filename=${name}`;
  return `inline;filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** How to answer a GET for a path, given its stat; a file's body is InstanceFiles.read(path). */
export type FileGetAnswer =
  | { kind: "file"; headers: Record<string, string> }
  | { kind: "symlink"; headers: Record<string, string>; body: Buffer }
  | { kind: "directory"; headers: Record<string, string>; body: SyncResponse<string[]> };

export function fileGetAnswer(filePath: string, stat: FileStat): FileGetAnswer {
  const headers = fileHeaders(stat);
  switch (stat.type) {
    case "directory":
      return { kind: "directory", headers, body: syncResponse(stat.entries ?? []) };
    case "symlink": {
      const body = Buffer.from(symlinkAnswerTarget(filePath, stat.target ?? ""), "utf8");
      return { kind: "symlink", headers: { ...headers, ...rawHeaders(filePath), "Content-Length": String(body.length) }, body };
    }
    case "file":
      // No Content-Length: the file may change between the stat and the read, so it is sent chunked.
      return { kind: "file", headers: { ...headers, ...rawHeaders(filePath) } };
  }
}

function rawHeaders(filePath: string): Record<string, string> {
  return { "Content-Type": "application/octet-stream", "Content-Disposition": contentDisposition(filePath) };
}
