import type { Readable } from "node:stream";
import { badRequest } from "../../api/errors.js";
import type { InstanceEngines } from "../../instances/drivers/engines.js";
import { InstanceFiles, type FileTarget, type IdMapRange } from "../../instances/files/fileio.js";
import type { GuestAgent } from "../../instances/drivers/qemu/agent-api.js";
import { fileGetAnswer, parseFileHeaders } from "../../instances/files/headers.js";
import { hostName, instanceUrl, type InstanceRecord } from "../../instances/record.js";
import type { InstanceService } from "../../instances/service.js";
import { idmapFromJson, type IdmapEntry } from "../../sys/idmap.js";
import type { EventHub } from "../../core/events.js";
import { empty, raw, type Request, type Route } from "../route.js";

export interface InstanceFileDeps {
  instances: InstanceService;
  driver: InstanceEngines;
  events: EventHub;
  /** Host path of an instance's volume (its rootfs is `<path>/rootfs`). */
  volumePath: (r: InstanceRecord) => Promise<string>;
}

/** What the file API needs of an instance's files, wherever they are. */
type FileOps = Pick<InstanceFiles & GuestAgent, "stat" | "read" | "mkdir" | "symlink" | "delete"> & {
  write(p: string, data: Readable | Buffer, opts?: Parameters<InstanceFiles["write"]>[2]): Promise<void>;
};

/** A symlink target is a path, so a body longer than PATH_MAX is not one. */
const MAX_SYMLINK_TARGET = 4096;

/**
 * GET/POST/DELETE /1.0/instances/<name>/files?path=, LXD 5.0's file API. Every access goes
 * through InstanceFiles, which resolves the path inside the instance (its namespaces when it
 * runs, a chroot with its id map when it is stopped), so a symlink made in the container
 * cannot lead to a host file.
 */
export function instanceFileRoutes(deps: InstanceFileDeps): Route[] {
  const { instances, driver, events } = deps;

  async function open(req: Request): Promise<{ r: InstanceRecord; files: FileOps; path: string }> {
    const path = req.query.path ?? "";
    if (path === "") throw badRequest("Missing path argument");
    const r = await instances.record(req.project, req.params.name!);
    return { r, files: await filesOf(r), path };
  }

  /** A VM's files are its guest agent's to reach (running only); a container's, through its tree. */
  async function filesOf(r: InstanceRecord): Promise<FileOps> {
    const host = hostName(r.project, r.name);
    if (driver.hasGuestAgent(host)) {
      if ((await driver.status(host)).status !== "Running") throw badRequest(`Instance "${r.name}" is not running: a virtual machine's files are reached through its agent`);
      const agent = await driver.guestAgent(host);
      if (agent) return agent;
    }
    return new InstanceFiles(await target(r));
  }

  async function target(r: InstanceRecord): Promise<FileTarget> {
    const state = await driver.status(hostName(r.project, r.name));
    if ((state.status === "Running" || state.status === "Frozen") && state.pid > 0) return { pid: state.pid, instance: r.name };
    const rootfs = `${await deps.volumePath(r)}/rootfs`;
    // The rootfs on disk is owned as volatile.last_state.idmap says; "[]" (or a privileged
    // container, which has no key) means the ids are the container's own ids, unshifted.
    const onDisk = idmapFromJson(r.config["volatile.last_state.idmap"] ?? "");
    if (onDisk.length === 0) return { rootfs, instance: r.name };
    return { rootfs, uidmap: ranges(onDisk, "u"), gidmap: ranges(onDisk, "g"), instance: r.name };
  }

  const lifecycle = (r: InstanceRecord, action: string, path: string) =>
    events.lifecycle(action, instanceUrl(r.project, r.name), { path }, r.project);

  async function get(req: Request) {
    const { r, files, path } = await open(req);
    const stat = await files.stat(path);
    const answer = fileGetAnswer(path, stat);
    let reply;
    switch (answer.kind) {
      case "directory":
        reply = raw(JSON.stringify(answer.body), { ...answer.headers, "Content-Type": "application/json" });
        break;
      case "symlink":
        reply = raw(answer.body, answer.headers);
        break;
      case "file":
        reply = raw(await files.read(path), answer.headers);
        break;
    }
    lifecycle(r, "instance-file-retrieved", path);
    return reply;
  }

  async function post(req: Request) {
    const push = parseFileHeaders(req.headers);
    const { r, files, path } = await open(req);
    const owner = { uid: push.uid, gid: push.gid };
    switch (push.type) {
      case "file":
        await files.write(path, body(req), { ...owner, mode: push.mode, append: push.write === "append" });
        break;
      case "directory":
        await drain(req);
        await files.mkdir(path, { ...owner, mode: push.mode });
        break;
      case "symlink":
        await files.symlink((await readSmall(body(req), MAX_SYMLINK_TARGET)).toString("utf8"), path, owner);
        break;
    }
    lifecycle(r, "instance-file-pushed", path);
    return empty();
  }

  async function remove(req: Request) {
    const { r, files, path } = await open(req);
    await files.delete(path);
    lifecycle(r, "instance-file-deleted", path);
    return empty();
  }

  return [
    { method: "GET", path: "/1.0/instances/:name/files", access: "trusted", handler: get },
    { method: "POST", path: "/1.0/instances/:name/files", access: "trusted", rawBody: "always", handler: post },
    { method: "DELETE", path: "/1.0/instances/:name/files", access: "trusted", handler: remove },
  ];
}

function ranges(entries: readonly IdmapEntry[], kind: "u" | "g"): IdMapRange[] {
  return entries.filter((e) => e.kind === kind).map((e) => ({ nsid: e.nsid, hostid: e.hostid, range: e.range }));
}

/**
 * The request body as bytes: a stream for any non-JSON upload (the usual case: clients send
 * octet-stream or nothing); a client that labels the content JSON gets it back as sent.
 */
function body(req: Request): Readable | Buffer {
  const b = req.body;
  if (b === undefined || b === null) return Buffer.alloc(0);
  if (isReadable(b)) return b;
  if (Buffer.isBuffer(b)) return b;
  return Buffer.from(typeof b === "string" ? b : JSON.stringify(b), "utf8");
}

function isReadable(v: unknown): v is Readable {
  return typeof v === "object" && v !== null && typeof (v as Readable).pipe === "function" && typeof (v as Readable).on === "function";
}

async function readSmall(src: Readable | Buffer, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(src)) return src;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of src) {
    size += (c as Buffer).length;
    if (size > limit) throw badRequest(`The symlink target is longer than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function drain(req: Request): Promise<void> {
  const b = req.body;
  if (isReadable(b)) for await (const _ of b);
}
