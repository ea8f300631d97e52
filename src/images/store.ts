import { createReadStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { etagOf } from "../api/etag.js";
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import type { EventHub } from "../core/events.js";
import { Revert } from "../core/revert.js";
import type { DocumentStore } from "../state/store.js";
import { ImageAliases, validateAliasName } from "./aliases.js";
import { checkExpectedFingerprint, isFingerprintPrefix } from "./fingerprint.js";
import type { Compression, ImageType } from "./format.js";
import { importRecord, type CommitOptions } from "./import-record.js";
import { createTarball } from "./archive.js";
import { inspectImage } from "./inspect.js";
import type { ProgressCallback } from "./progress.js";
import { ImageStaging, STAGING_PREFIX } from "./staging.js";
import {
  aliasKey,
  imageKey,
  imagePrefix,
  imageUrl,
  nowTime,
  type AliasRecord,
  type Image,
  type ImagePut,
  type ImageRecord,
} from "./types.js";
import { UNPACK_PREFIX, UnpackCache } from "./unpack.js";

export interface ImageStoreOptions {
  /** Lodge's state directory; image files live in <dir>/images. */
  dir: string;
  store: DocumentStore;
  events: EventHub;
}

type Chunks = AsyncIterable<Buffer | Uint8Array>;

export interface StreamImportOptions extends CommitOptions {
  /** The unified tarball, or a split image's metadata tarball. */
  metadata: Chunks;
  metadataSize?: number;
  /** A split image's rootfs; a function when the stream only exists once metadata is read. */
  rootfs?: Chunks | (() => Promise<Chunks>);
  rootfsSize?: number;
  onProgress?: ProgressCallback;
}

export interface ImageFileInfo {
  fingerprint: string;
  type: ImageType;
  metadata: { path: string; filename: string; size: number };
  rootfs?: { path: string; filename: string; size: number };
}

/**
 * The image store: image files under $LODGE_DIR/images (<fp>, plus <fp>.rootfs for split
 * images, and the <fp>.unpacked cache), records per project in the document store, aliases,
 * and lifecycle events. Files are shared between projects; records are not.
 */
export class ImageStore {
  readonly imagesDir: string;
  readonly aliases: ImageAliases;
  private readonly unpacked: UnpackCache;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly docs: DocumentStore;
  private readonly events: EventHub;
  /** Told when an image's files go (no project has it any more): storage drops its image volumes. */
  onImageGone?: (fp: string) => Promise<void>;

  constructor(opts: ImageStoreOptions) {
    this.imagesDir = join(opts.dir, "images");
    this.docs = opts.store;
    this.events = opts.events;
    this.unpacked = new UnpackCache(this.imagesDir);
    this.aliases = new ImageAliases(this.docs, this.events, (project, ref) => this.record(project, ref));
  }

  /** Creates the images directory and removes what a crash left half-done. */
  async init(): Promise<void> {
    await mkdir(this.imagesDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.imagesDir))
      if (name.startsWith(STAGING_PREFIX) || name.startsWith(UNPACK_PREFIX))
        await rm(join(this.imagesDir, name), { recursive: true, force: true });
  }

  // ---- reading ----

  /** Images of a project with their aliases (two store reads, whatever the count). */
  async list(project: string, opts: { publicOnly?: boolean } = {}): Promise<Image[]> {
    const [records, aliases] = await Promise.all([
      this.docs.list<ImageRecord>(imagePrefix(project)),
      this.aliases.records(project),
    ]);
    const byTarget = groupAliases(aliases);
    return records
      .map((d) => d.value)
      .filter((r) => !opts.publicOnly || r.public)
      .map((r) => toImage(r, byTarget.get(r.fingerprint) ?? []));
  }

  /** One image by fingerprint or unique fingerprint prefix. */
  async get(project: string, ref: string, opts: { publicOnly?: boolean } = {}): Promise<Image> {
    const r = await this.record(project, ref, opts.publicOnly);
    const aliases = (await this.aliases.records(project)).filter((a) => a.target === r.fingerprint);
    return toImage(r, aliases);
  }

  /** The stored record of an image by fingerprint or prefix; 404 if none, 400 if ambiguous. */
  async record(project: string, ref: string, publicOnly = false): Promise<ImageRecord> {
    if (!isFingerprintPrefix(ref)) throw notFound(`Image "${ref}" not found`);
    const prefix = ref.toLowerCase();
    const hits = (await this.docs.list<ImageRecord>(imagePrefix(project) + prefix))
      .map((d) => d.value)
      .filter((r) => !publicOnly || r.public);
    if (hits.length === 0) throw notFound(`Image "${ref}" not found`);
    if (hits.length > 1) throw badRequest(`More than one image matches "${ref}"; give more of the fingerprint`);
    return hits[0]!;
  }

  /** The ETag of an image: what PUT may change (LXD: public, auto_update, properties). */
  etag(img: Pick<Image, "public" | "auto_update" | "properties">): string {
    return etagOf([img.public, img.auto_update, img.properties]);
  }

  /** Paths and export names of an image's files. */
  async files(project: string, ref: string, publicOnly = false): Promise<ImageFileInfo> {
    const r = await this.record(project, ref, publicOnly);
    const meta = join(this.imagesDir, r.fingerprint);
    const info: ImageFileInfo = {
      fingerprint: r.fingerprint,
      type: r.type,
      metadata: { path: meta, filename: `${r.fingerprint}${r.files.metadata}`, size: (await stat(meta)).size },
    };
    if (r.files.rootfs !== undefined) {
      info.metadata.filename = `meta-${r.fingerprint}${r.files.metadata}`;
      const rootfs = `${meta}.rootfs`;
      info.rootfs = { path: rootfs, filename: `${r.fingerprint}${r.files.rootfs}`, size: (await stat(rootfs)).size };
    }
    return info;
  }

  // ---- importing ----

  /** A fresh staging area for an import; the caller commits or discards it. */
  stage(): Promise<ImageStaging> {
    return ImageStaging.create(this.imagesDir);
  }

  /** Receives an image from streams (uploads, downloads), validates and stores it. */
  async importFromStreams(opts: StreamImportOptions): Promise<Image> {
    const staging = await this.stage();
    try {
      const split = opts.rootfs !== undefined;
      await staging.receive("metadata", opts.metadata, {
        label: split ? "metadata" : "image",
        total: opts.metadataSize,
        onProgress: opts.onProgress,
        signal: opts.signal,
      });
      if (opts.rootfs) {
        const rootfs = typeof opts.rootfs === "function" ? await opts.rootfs() : opts.rootfs;
        await staging.receive("rootfs", rootfs, { total: opts.rootfsSize, onProgress: opts.onProgress, signal: opts.signal });
      }
      return await this.commit(staging, opts);
    } finally {
      await staging.discard();
    }
  }

  /** Imports image files already on disk (a builder's output); the files are copied. */
  async addImage(opts: CommitOptions & { metadataPath: string; rootfsPath?: string; onProgress?: ProgressCallback }): Promise<Image> {
    return this.importFromStreams({
      ...opts,
      metadata: createReadStream(opts.metadataPath),
      metadataSize: (await stat(opts.metadataPath)).size,
      rootfs: opts.rootfsPath ? createReadStream(opts.rootfsPath) : undefined,
      rootfsSize: opts.rootfsPath ? (await stat(opts.rootfsPath)).size : undefined,
    });
  }

  /**
   * Packs a unified image from trees on disk (an instance being published): `members` are
   * top-level names, each in its directory ("metadata.yaml", "templates", "rootfs"), written
   * as they are (owners, modes, xattrs), compressed, then validated and stored like an upload.
   */
  async addFromTree(
    opts: CommitOptions & { members: { dir: string; name: string }[]; compression: Compression; onProgress?: ProgressCallback },
  ): Promise<Image> {
    const staging = await this.stage();
    try {
      const tar = createTarball(opts.members.flatMap((m) => ["-C", m.dir, m.name]), opts.compression, opts.signal);
      try {
        await staging.receive("metadata", tar.stdout, { label: "image", onProgress: opts.onProgress, signal: opts.signal });
      } finally {
        tar.stdout.resume();
      }
      await tar.done;
      return await this.commit(staging, opts);
    } finally {
      await staging.discard();
    }
  }

  /**
   * Validates what was staged and moves it into the store. On any failure nothing of this
   * import remains (the caller discards the staging directory).
   */
  async commit(staging: ImageStaging, opts: CommitOptions): Promise<Image> {
    const { project } = opts;
    const fp = staging.fingerprint();
    checkExpectedFingerprint(fp, opts.expectedFingerprint);
    for (const a of opts.aliases ?? []) validateAliasName(a.name);
    if (await this.docs.get(imageKey(project, fp))) throw conflict(`Image with same fingerprint already exists (${fp})`);

    const metaStaged = staging.path("metadata")!;
    const rootfsStaged = staging.path("rootfs");
    const inspected = await inspectImage({ metadata: metaStaged, rootfs: rootfsStaged }, { declaredType: opts.type, signal: opts.signal });
    const record = importRecord(fp, staging.size, inspected, opts);

    const aliases = (opts.aliases ?? []).map((a) => ({ name: a.name, description: a.description ?? "", target: fp }));
    await this.withLock(fp, async () => {
      const undo = new Revert();
      try {
        const metaPath = join(this.imagesDir, fp);
        // Another project may hold the same image: its files are identical (same hash).
        if (!(await exists(metaPath))) {
          await rename(metaStaged, metaPath);
          undo.add(() => unlink(metaPath));
          if (rootfsStaged) {
            await rename(rootfsStaged, `${metaPath}.rootfs`);
            undo.add(() => unlink(`${metaPath}.rootfs`));
          }
        }
        await this.docs.txn(async (tx) => {
          if (await tx.get(imageKey(project, fp))) throw conflict(`Image with same fingerprint already exists (${fp})`);
          for (const a of aliases)
            if (await tx.get(aliasKey(project, a.name))) throw conflict(`Alias "${a.name}" already exists`);
          tx.put(imageKey(project, fp), record);
          for (const a of aliases) tx.put(aliasKey(project, a.name), a);
        });
        undo.commit();
      } finally {
        await undo.run();
      }
    });

    this.events.lifecycle("image-created", imageUrl(fp, project), { type: record.type }, project);
    for (const a of aliases) this.aliases.announceCreated(project, a);
    return toImage(record, aliases);
  }

  // ---- changing ----

  /** PUT: replaces public, auto_update, properties (and expires_at, profiles when given). */
  async update(project: string, ref: string, put: Partial<ImagePut>, ifMatch?: string): Promise<void> {
    await this.change(project, ref, ifMatch, (r) => {
      r.public = put.public ?? false;
      r.auto_update = put.auto_update ?? false;
      r.properties = { ...(put.properties ?? {}) };
      if (put.expires_at && !isZeroTime(put.expires_at)) r.expires_at = put.expires_at;
      r.profiles = put.profiles ?? ["default"];
    });
  }

  /** PATCH: changes only the fields present; properties are merged. */
  async patch(project: string, ref: string, patch: Partial<ImagePut>, ifMatch?: string): Promise<void> {
    await this.change(project, ref, ifMatch, (r) => {
      if (patch.public !== undefined) r.public = patch.public;
      if (patch.auto_update !== undefined) r.auto_update = patch.auto_update;
      if (patch.properties !== undefined) r.properties = { ...r.properties, ...patch.properties };
      if (patch.expires_at && !isZeroTime(patch.expires_at)) r.expires_at = patch.expires_at;
      if (patch.profiles !== undefined) r.profiles = patch.profiles;
    });
  }

  private async change(project: string, ref: string, ifMatch: string | undefined, edit: (r: ImageRecord) => void): Promise<void> {
    const fp = (await this.record(project, ref)).fingerprint;
    await this.docs.txn(async (tx) => {
      const doc = await tx.get<ImageRecord>(imageKey(project, fp));
      if (!doc) throw notFound(`Image "${ref}" not found`);
      if (ifMatch && ifMatch !== this.etag(doc.value))
        throw preconditionFailed("ETag doesn't match: the image was changed since you read it");
      const next = structuredClone(doc.value);
      edit(next);
      tx.put(imageKey(project, fp), next);
    });
    this.events.lifecycle("image-updated", imageUrl(fp, project), {}, project);
  }

  /** Records that an instance was created from the image (last_used_at). */
  async markUsed(project: string, fp: string): Promise<void> {
    await this.docs.txn(async (tx) => {
      const doc = await tx.get<ImageRecord>(imageKey(project, fp));
      if (doc) tx.put(imageKey(project, fp), { ...doc.value, last_used_at: nowTime() });
    });
  }

  /** Deletes an image from a project with its aliases; the files go when no project has it. */
  async delete(project: string, ref: string): Promise<void> {
    const fp = (await this.record(project, ref)).fingerprint;
    await this.withLock(fp, async () => {
      const aliases = (await this.aliases.records(project)).filter((a) => a.target === fp);
      const others = await this.docs.txn(async (tx) => {
        if (!(await tx.get(imageKey(project, fp)))) throw notFound(`Image "${ref}" not found`);
        tx.delete(imageKey(project, fp));
        for (const a of aliases) tx.delete(aliasKey(project, a.name));
        return (await tx.list("images/")).some((d) => d.key.endsWith(`/${fp}`) && d.key !== imageKey(project, fp));
      });
      if (!others) {
        await this.unpacked.remove(fp);
        await rm(join(this.imagesDir, fp), { force: true });
        await rm(join(this.imagesDir, `${fp}.rootfs`), { force: true });
        await this.onImageGone?.(fp).catch(() => {});
      }
      for (const a of aliases) this.aliases.announceDeleted(project, a.name);
    });
    this.events.lifecycle("image-deleted", imageUrl(fp, project), {}, project);
  }

  /** Whether any project has the image. */
  async exists(fp: string): Promise<boolean> {
    return (await this.docs.list("images/")).some((d) => d.key.endsWith(`/${fp}`));
  }

  // ---- the unpacked cache ----

  /** The unpacked tree (metadata.yaml, templates/, rootfs/ or rootfs.img) of an image, unpacked once. */
  ensureUnpacked(fp: string, signal?: AbortSignal): Promise<string> {
    return this.unpacked.ensure(fp, signal);
  }

  /** Serialises work on one fingerprint (import vs delete of the same files). */
  private async withLock<T>(fp: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(fp) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    const tail = next.catch(() => {});
    this.locks.set(fp, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(fp) === tail) this.locks.delete(fp);
    }
  }
}

function toImage(r: ImageRecord, aliases: readonly AliasRecord[]): Image {
  const { files: _files, ...img } = r;
  return { ...img, aliases: aliases.map((a) => ({ name: a.name, description: a.description })) };
}

function groupAliases(aliases: readonly AliasRecord[]): Map<string, AliasRecord[]> {
  const m = new Map<string, AliasRecord[]>();
  for (const a of aliases) m.set(a.target, [...(m.get(a.target) ?? []), a]);
  return m;
}

const isZeroTime = (t: string) => t.startsWith("0001-01-01");

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
