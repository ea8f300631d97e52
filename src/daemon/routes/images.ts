import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { badRequest } from "../../api/errors.js";
import { parseFilter, matchFilter } from "../../api/filter.js";
import { multipartBody } from "../../images/multipart.js";
import { progressText } from "../../images/progress.js";
import type { ImageSource, ImagesPostJson } from "../../images/source.js";
import type { ImageStore } from "../../images/store.js";
import type { ImagePut } from "../../images/types.js";
import { receiveUpload, uploadOptions } from "../../images/upload.js";
import type { EventHub } from "../../core/events.js";
import type { OperationContext, OperationManager } from "../../core/operations.js";
import { async, empty, ifMatch, raw, recursion, sync, type Request, type Route } from "../route.js";

export interface ImageRouteDeps {
  images: ImageStore;
  operations: OperationManager;
  events: EventHub;
  /** POST /1.0/images JSON sources by `source.type` ("image", "url"); see images/source.ts. */
  sources?: Record<string, ImageSource>;
  /** POST /1.0/images/<fp>/refresh: re-checks the image's origin (images/remotes/refresh.ts). */
  refresh?: (project: string, fingerprint: string, op: OperationContext) => Promise<{ refreshed: boolean }>;
}

/** /1.0/images and /1.0/images/aliases, LXD 5.0's shapes. */
export function imageRoutes(deps: ImageRouteDeps): Route[] {
  const { images, operations, events } = deps;
  const sources = deps.sources ?? {};
  const publicOnly = (req: Request) => !req.caller.trusted;
  const fp = (req: Request) => req.params.fingerprint!;
  const name = (req: Request) => req.params.name!;

  async function listImages(req: Request) {
    let list = await images.list(req.project, { publicOnly: publicOnly(req) });
    if (req.query.filter) {
      const clauses = parseFilter(req.query.filter);
      list = list.filter((img) => matchFilter(img, clauses));
    }
    return sync(recursion(req) > 0 ? list : list.map((i) => `/1.0/images/${i.fingerprint}`));
  }

  async function createImage(req: Request) {
    const body = req.body;
    if (isStream(body)) return upload(req, body);
    return fromSource(req, (body ?? {}) as ImagesPostJson);
  }

  /** A raw upload: the operation consumes the body; the reply leaves once the body is read. */
  async function upload(req: Request, body: Readable) {
    let bodyRead!: () => void;
    const consumed = new Promise<void>((r) => (bodyRead = r));
    const headerOpts = uploadOptions(req.headers);
    const length = Number(req.headers["content-length"]);
    const op = operations.create({
      description: "Downloading image",
      project: req.project,
      cancellable: true,
      run: async (ctx) => {
        const staging = await images.stage().catch((e: unknown) => {
          bodyRead();
          throw e;
        });
        try {
          let received;
          try {
            received = await receiveUpload(staging, body, req.headers["content-type"], {
              signal: ctx.signal,
              contentLength: Number.isFinite(length) && length > 0 ? length : undefined,
              onProgress: (p) => ctx.updateMetadata({ upload_progress: progressText(p) }),
            });
          } finally {
            body.resume(); // whatever is left (after a refused part) is drained, not left hanging
            bodyRead();
          }
          ctx.updateMetadata({ upload_progress: "Validating image" });
          const img = await images.commit(staging, {
            ...headerOpts,
            project: req.project,
            type: received.type,
            filename: received.filename ?? headerOpts.filename,
            signal: ctx.signal,
          });
          return { fingerprint: img.fingerprint, size: String(img.size) };
        } finally {
          await staging.discard();
        }
      },
    });
    await consumed;
    return async(op);
  }

  /** JSON body: the source named by source.type does the fetching (remotes engineer's seam). */
  function fromSource(req: Request, body: ImagesPostJson) {
    const type = body.source?.type;
    if (!type) throw badRequest("Invalid images JSON: source.type is required (or send the image itself as the body)");
    if (body.source?.mode === "push") throw badRequest('Image source mode "push" is not supported yet');
    const source = sources[type];
    if (!source) throw badRequest(`Image source type "${type}" is not supported yet`);
    const op = operations.create({
      description: "Downloading image",
      project: req.project,
      cancellable: true,
      run: async (ctx) => {
        const img = await source.import(body, { project: req.project, store: images, op: ctx });
        const have = new Set(img.aliases.map((a) => a.name));
        for (const a of body.aliases ?? [])
          if (!have.has(a.name)) await images.aliases.create(req.project, { ...a, target: img.fingerprint });
        return { fingerprint: img.fingerprint, size: String(img.size) };
      },
    });
    return async(op);
  }

  async function getImage(req: Request) {
    const img = await images.get(req.project, fp(req), { publicOnly: publicOnly(req) });
    return sync(img, { etag: images.etag(img) });
  }

  async function exportImage(req: Request) {
    const f = await images.files(req.project, fp(req), publicOnly(req));
    events.lifecycle("image-retrieved", `/1.0/images/${f.fingerprint}`, {}, req.project);
    if (!f.rootfs)
      return raw(createReadStream(f.metadata.path), {
        "content-type": "application/octet-stream",
        "content-length": String(f.metadata.size),
        "content-disposition": `inline;filename=${f.metadata.filename}`,
      });
    const { body, contentType } = multipartBody([
      { name: "metadata", filename: f.metadata.filename, path: f.metadata.path },
      { name: f.type === "virtual-machine" ? "rootfs.img" : "rootfs", filename: f.rootfs.filename, path: f.rootfs.path },
    ]);
    return raw(body, { "content-type": contentType });
  }

  function deleteImage(req: Request) {
    return images.record(req.project, fp(req)).then((r) =>
      async(
        operations.create({
          description: "Deleting image",
          project: req.project,
          resources: { images: [`/1.0/images/${r.fingerprint}`] },
          run: async () => {
            await images.delete(req.project, r.fingerprint);
          },
        }),
      ),
    );
  }

  return [
    { method: "GET", path: "/1.0/images", access: "untrusted", handler: listImages },
    { method: "POST", path: "/1.0/images", access: "trusted", rawBody: "typed", handler: createImage },
    { method: "GET", path: "/1.0/images/aliases", access: "untrusted", handler: listAliases },
    { method: "POST", path: "/1.0/images/aliases", access: "trusted", handler: createAlias },
    { method: "GET", path: "/1.0/images/aliases/:name", access: "untrusted", handler: getAlias },
    { method: "PUT", path: "/1.0/images/aliases/:name", access: "trusted", handler: putAlias },
    { method: "PATCH", path: "/1.0/images/aliases/:name", access: "trusted", handler: patchAlias },
    { method: "POST", path: "/1.0/images/aliases/:name", access: "trusted", handler: renameAlias },
    { method: "DELETE", path: "/1.0/images/aliases/:name", access: "trusted", handler: deleteAlias },
    { method: "GET", path: "/1.0/images/:fingerprint", access: "untrusted", handler: getImage },
    { method: "PUT", path: "/1.0/images/:fingerprint", access: "trusted", handler: putImage },
    { method: "PATCH", path: "/1.0/images/:fingerprint", access: "trusted", handler: patchImage },
    { method: "DELETE", path: "/1.0/images/:fingerprint", access: "trusted", handler: deleteImage },
    { method: "GET", path: "/1.0/images/:fingerprint/export", access: "untrusted", handler: exportImage },
    { method: "POST", path: "/1.0/images/:fingerprint/refresh", access: "trusted", handler: refreshImage },
  ];

  /** An operation whose metadata says {refreshed: true|false}, which `lxc image refresh` reports. */
  async function refreshImage(req: Request) {
    const r = await images.record(req.project, fp(req));
    const refresh = deps.refresh;
    if (!refresh) throw badRequest("Image refresh is not supported yet");
    const op = operations.create({
      description: "Refreshing image",
      project: req.project,
      cancellable: true,
      resources: { images: [`/1.0/images/${r.fingerprint}`] },
      run: async (ctx) => ({ refreshed: (await refresh(req.project, r.fingerprint, ctx)).refreshed }),
    });
    return async(op);
  }

  async function putImage(req: Request) {
    await images.update(req.project, fp(req), imagePut(req.body), ifMatch(req));
    return empty();
  }

  async function patchImage(req: Request) {
    await images.patch(req.project, fp(req), imagePut(req.body), ifMatch(req));
    return empty();
  }

  async function listAliases(req: Request) {
    let list = await images.aliases.list(req.project);
    if (publicOnly(req)) {
      const visible = new Set((await images.list(req.project, { publicOnly: true })).map((i) => i.fingerprint));
      list = list.filter((a) => visible.has(a.target));
    }
    return sync(recursion(req) > 0 ? list : list.map((a) => `/1.0/images/aliases/${encodeURIComponent(a.name)}`));
  }

  async function getAlias(req: Request) {
    const a = await images.aliases.get(req.project, name(req));
    // An untrusted caller only sees aliases of public images.
    if (publicOnly(req)) await images.record(req.project, a.target, true);
    return sync(a, { etag: images.aliases.etag(a) });
  }

  async function createAlias(req: Request) {
    const a = await images.aliases.create(req.project, object(req.body));
    return sync({}, { status: 201, location: `/1.0/images/aliases/${encodeURIComponent(a.name)}` });
  }

  async function putAlias(req: Request) {
    await images.aliases.update(req.project, name(req), object(req.body), ifMatch(req));
    return empty();
  }

  async function patchAlias(req: Request) {
    await images.aliases.patch(req.project, name(req), object(req.body), ifMatch(req));
    return empty();
  }

  async function renameAlias(req: Request) {
    const to = object(req.body).name;
    await images.aliases.rename(req.project, name(req), to);
    return sync({}, { status: 201, location: `/1.0/images/aliases/${encodeURIComponent(String(to))}` });
  }

  async function deleteAlias(req: Request) {
    await images.aliases.delete(req.project, name(req));
    return empty();
  }
}

function isStream(v: unknown): v is Readable {
  return typeof v === "object" && v !== null && typeof (v as Readable).pipe === "function";
}

function object(v: unknown): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw badRequest("Invalid request: body must be a JSON object");
  return v as Record<string, unknown>;
}

/** Checks the editable image fields present in a PUT/PATCH body. */
function imagePut(v: unknown): Partial<ImagePut> {
  const b = object(v);
  const out: Partial<ImagePut> = {};
  for (const k of ["public", "auto_update"] as const) {
    if (b[k] === undefined) continue;
    if (typeof b[k] !== "boolean") throw badRequest(`Invalid request: ${k} must be true or false`);
    out[k] = b[k] as boolean;
  }
  if (b.properties !== undefined && b.properties !== null) {
    if (typeof b.properties !== "object" || Array.isArray(b.properties)) throw badRequest("Invalid request: properties must be a map of strings");
    for (const [k, val] of Object.entries(b.properties))
      if (typeof val !== "string") throw badRequest(`Invalid request: properties.${k} must be a string`);
    out.properties = b.properties as Record<string, string>;
  }
  if (b.expires_at !== undefined && b.expires_at !== null) {
    if (typeof b.expires_at !== "string" || Number.isNaN(Date.parse(b.expires_at)))
      throw badRequest("Invalid request: expires_at must be an RFC 3339 time");
    out.expires_at = b.expires_at;
  }
  if (b.profiles !== undefined && b.profiles !== null) {
    if (!Array.isArray(b.profiles) || b.profiles.some((p) => typeof p !== "string"))
      throw badRequest("Invalid request: profiles must be a list of names");
    out.profiles = b.profiles as string[];
  }
  return out;
}
