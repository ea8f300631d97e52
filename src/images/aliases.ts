import { etagOf } from "../api/etag.js";
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import type { EventHub } from "../core/events.js";
import type { DocumentStore } from "../state/store.js";
import { aliasKey, aliasPrefix, aliasUrl, imagePrefix, type AliasRecord, type ImageAliasEntry, type ImageRecord } from "./types.js";

/** Resolves a fingerprint or prefix to the image record (404 / ambiguity errors included). */
type Resolve = (project: string, ref: string) => Promise<ImageRecord>;

/** Alias names: anything a URL path segment can carry, except "/" (LXD refuses it too). */
export function validateAliasName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name === "") throw badRequest("Alias name is required");
  if (name.includes("/")) throw badRequest(`Invalid alias name "${name}": "/" is not allowed`);
  if (name.length > 255) throw badRequest(`Invalid alias name "${name.slice(0, 32)}…": at most 255 characters`);
}

/**
 * Image aliases of a project: a name pointing at one image (by full fingerprint). Stored at
 * image-aliases/<project>/<name>; the alias entry's `type` is its image's type.
 */
export class ImageAliases {
  constructor(
    private readonly docs: DocumentStore,
    private readonly events: EventHub,
    private readonly resolve: Resolve,
  ) {}

  async records(project: string): Promise<AliasRecord[]> {
    return (await this.docs.list<AliasRecord>(aliasPrefix(project))).map((d) => d.value);
  }

  async list(project: string): Promise<ImageAliasEntry[]> {
    const [aliases, images] = await Promise.all([this.records(project), this.docs.list<ImageRecord>(imagePrefix(project))]);
    const types = new Map(images.map((d) => [d.value.fingerprint, d.value.type]));
    return aliases.map((a) => ({ ...a, type: types.get(a.target) ?? "container" }));
  }

  async get(project: string, name: string): Promise<ImageAliasEntry> {
    const doc = await this.docs.get<AliasRecord>(aliasKey(project, name));
    if (!doc) throw notFound(`Image alias "${name}" not found`);
    const img = await this.resolve(project, doc.value.target).catch(() => undefined);
    return { ...doc.value, type: img?.type ?? "container" };
  }

  /** The ETag of an alias is the alias entry itself (as LXD). */
  etag(a: ImageAliasEntry): string {
    return etagOf(a);
  }

  async create(project: string, req: { name?: unknown; target?: unknown; description?: unknown }): Promise<ImageAliasEntry> {
    if (!req.name || !req.target) throw badRequest("name and target are required");
    validateAliasName(req.name);
    if (typeof req.target !== "string") throw badRequest("target must be a fingerprint");
    const img = await this.resolve(project, req.target);
    const rec: AliasRecord = { name: req.name, description: str(req.description, "description"), target: img.fingerprint };
    await this.docs.txn(async (tx) => {
      if (await tx.get(aliasKey(project, rec.name))) throw conflict(`Alias "${rec.name}" already exists`);
      tx.put(aliasKey(project, rec.name), rec);
    });
    this.announceCreated(project, rec);
    return { ...rec, type: img.type };
  }

  /** PUT: target is required, description replaced. */
  async update(project: string, name: string, req: { target?: unknown; description?: unknown }, ifMatch?: string): Promise<void> {
    if (!req.target) throw badRequest("The target field is required");
    if (typeof req.target !== "string") throw badRequest("target must be a fingerprint");
    const img = await this.resolve(project, req.target);
    await this.change(project, name, ifMatch, (a) => ({ ...a, target: img.fingerprint, description: str(req.description, "description") }));
  }

  /** PATCH: only the fields present change. */
  async patch(project: string, name: string, req: { target?: unknown; description?: unknown }, ifMatch?: string): Promise<void> {
    let target: string | undefined;
    if (req.target !== undefined) {
      if (typeof req.target !== "string") throw badRequest("target must be a fingerprint");
      target = (await this.resolve(project, req.target)).fingerprint;
    }
    await this.change(project, name, ifMatch, (a) => ({
      ...a,
      ...(target ? { target } : {}),
      ...(req.description !== undefined ? { description: str(req.description, "description") } : {}),
    }));
  }

  private async change(project: string, name: string, ifMatch: string | undefined, edit: (a: AliasRecord) => AliasRecord): Promise<void> {
    const current = await this.get(project, name);
    if (ifMatch && ifMatch !== this.etag(current))
      throw preconditionFailed("ETag doesn't match: the alias was changed since you read it");
    let next!: AliasRecord;
    await this.docs.txn(async (tx) => {
      const doc = await tx.get<AliasRecord>(aliasKey(project, name));
      if (!doc) throw notFound(`Image alias "${name}" not found`);
      next = edit(doc.value);
      tx.put(aliasKey(project, name), next);
    });
    this.events.lifecycle("image-alias-updated", aliasUrl(name, project), { target: next.target }, project);
  }

  async rename(project: string, name: string, newName: unknown): Promise<void> {
    validateAliasName(newName);
    await this.docs.txn(async (tx) => {
      if (await tx.get(aliasKey(project, newName))) throw conflict(`Alias "${newName}" already exists`);
      const doc = await tx.get<AliasRecord>(aliasKey(project, name));
      if (!doc) throw notFound(`Image alias "${name}" not found`);
      tx.delete(aliasKey(project, name));
      tx.put(aliasKey(project, newName), { ...doc.value, name: newName });
    });
    this.events.lifecycle("image-alias-renamed", aliasUrl(newName, project), { old_name: name }, project);
  }

  async delete(project: string, name: string): Promise<void> {
    await this.docs.txn(async (tx) => {
      if (!(await tx.get(aliasKey(project, name)))) throw notFound(`Image alias "${name}" not found`);
      tx.delete(aliasKey(project, name));
    });
    this.announceDeleted(project, name);
  }

  announceCreated(project: string, a: AliasRecord): void {
    this.events.lifecycle("image-alias-created", aliasUrl(a.name, project), { target: a.target }, project);
  }

  announceDeleted(project: string, name: string): void {
    this.events.lifecycle("image-alias-deleted", aliasUrl(name, project), {}, project);
  }
}

function str(v: unknown, field: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw badRequest(`${field} must be a string`);
  return v;
}
