/**
 * `lxc publish`: POST /1.0/images with source {type: "instance" | "container", name}. The
 * instance's volume becomes a unified image (metadata.yaml, templates/, rootfs/) in the image
 * store, with the rootfs owned as images are (container ids: host uid 0 is the container's
 * root), whatever the instance's on-disk map is.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml, stringify } from "yaml";
import { badRequest } from "../api/errors.js";
import { parseCompression } from "../images/format.js";
import { progressText } from "../images/progress.js";
import type { ImageSource, ImageSourceContext, ImagesPostJson } from "../images/source.js";
import { unixToTime, type Image } from "../images/types.js";
import type { StorageService } from "../storage/service.js";
import { run } from "../sys/exec.js";
import { idmapFromJson } from "../sys/idmap.js";
import { shiftOwnership } from "../sys/shift.js";
import { vmImageMembers } from "./publish-vm.js";
import type { InstanceRecord } from "./record.js";
import { LOCK_TIMEOUT_MS, type InstanceService } from "./service.js";

export interface PublishDeps {
  instances: Pick<InstanceService, "record" | "locks">;
  storage: Pick<StorageService, "instancePath">;
  /** Whether the instance runs (a running one is refused, as LXD refuses it). */
  running: (r: InstanceRecord) => Promise<boolean>;
  /** Where scratch trees go: the images directory, whose start-up sweep removes ".staging-*" leftovers. */
  scratchDir: string;
  /**
   * A snapshot's tree and what it recorded (its config holds volatile.last_state.idmap, how the
   * tree is owned); wired once the snapshots service is there, until then snapshots are refused.
   */
  snapshot?: (project: string, instance: string, snapshot: string) => Promise<{ path: string; architecture: string; config: Record<string, string> }>;
}

/** What is packed: a volume's tree (metadata.yaml, templates/, rootfs/) and how it is owned. */
interface PublishTree {
  path: string;
  architecture: string;
  config: Record<string, string>;
  type: InstanceRecord["type"];
}

/** The image sources for POST /1.0/images that publish instances and snapshots. */
export function publishSources(d: PublishDeps): Record<string, ImageSource> {
  const instance: ImageSource = {
    import: (req, ctx) => {
      const name = sourceName(req);
      if (name.includes("/")) throw badRequest(`"${name}" is a snapshot; publish it with source type "snapshot"`);
      return locked(d, ctx.project, name, async (r) => {
        if (await d.running(r)) throw badRequest(`Cannot publish a running instance: stop "${name}" first (lxc publish --force stops and restarts it)`);
        return publishTree(d, req, ctx, { path: await d.storage.instancePath(r.pool, r.project, r.name, r.type), architecture: r.architecture, config: r.config, type: r.type });
      });
    },
  };
  const snapshot: ImageSource = {
    import: (req, ctx) => {
      const [name = "", snap = ""] = sourceName(req).split("/");
      if (!snap) throw badRequest(`"${name}" is not a snapshot (INSTANCE/SNAPSHOT); publish it with source type "instance"`);
      const source = d.snapshot;
      if (!source) throw badRequest("Publishing a snapshot is not supported yet: instance snapshots are not available on this server");
      // A snapshot is read-only: the instance may run meanwhile; the lock keeps the snapshot from going.
      return locked(d, ctx.project, name, async (r) => publishTree(d, req, ctx, { ...(await source(ctx.project, name, snap)), type: r.type }));
    },
  };
  return { instance, container: instance, snapshot };
}

function sourceName(req: ImagesPostJson): string {
  const name = req.source?.name ?? "";
  if (!name) throw badRequest("The instance to publish is missing (source.name)");
  return name;
}

/** Runs `work` under the instance's lock, so it cannot be started, renamed or deleted under the pack. */
async function locked<T>(d: PublishDeps, project: string, name: string, work: (r: InstanceRecord) => Promise<T>): Promise<T> {
  await d.instances.record(project, name);
  return d.instances.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => work(await d.instances.record(project, name)));
}

async function publishTree(d: PublishDeps, req: ImagesPostJson, ctx: ImageSourceContext, tree: PublishTree): Promise<Image> {
  const compression = parseCompression(req.compression_algorithm, "gzip");
  const expires = req.expires_at && !req.expires_at.startsWith("0001-01-01") ? new Date(req.expires_at) : undefined;
  if (expires && Number.isNaN(expires.getTime())) throw badRequest(`Invalid expires_at "${req.expires_at}": use RFC 3339`);
  const volume = tree.path;
  const scratch = await mkdtemp(join(d.scratchDir, ".staging-publish-"));
  try {
    await writeFile(join(scratch, "metadata.yaml"), await metadataYaml(volume, tree.architecture, req.properties ?? {}, expires), { mode: 0o644 });
    const members = [{ dir: scratch, name: "metadata.yaml" }, ...(await contentMembers(tree, scratch, ctx))];
    return await ctx.store.addFromTree({
      project: ctx.project,
      members,
      compression,
      public: req.public,
      autoUpdate: req.auto_update,
      filename: req.filename,
      aliases: req.aliases,
      profiles: req.profiles,
      expiresAt: expires ? unixToTime(Math.floor(expires.getTime() / 1000)) : undefined,
      signal: ctx.op.signal,
      onProgress: (p) => ctx.op.updateMetadata({ create_image_from_container_pack_progress: `Image pack: ${progressText(p)}` }),
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * What goes into the image beside metadata.yaml. A VM: its disk flattened into one qcow2
 * rootfs.img, its templates and boot files. A container: its templates, and its rootfs owned
 * as images are: a shifted rootfs goes in unshifted, through a copy (shared blocks where the
 * filesystem can), so the instance itself is left as it is.
 */
async function contentMembers(tree: PublishTree, scratch: string, ctx: ImageSourceContext): Promise<{ dir: string; name: string }[]> {
  const volume = tree.path;
  const progress = (text: string) => ctx.op.updateMetadata({ create_image_from_container_pack_progress: text });
  if (tree.type === "virtual-machine") {
    progress("Flattening the disk");
    return vmImageMembers(volume, scratch, ctx.op.signal);
  }
  const members = (await exists(join(volume, "templates"))) ? [{ dir: volume, name: "templates" }] : [];
  const onDisk = idmapFromJson(tree.config["volatile.last_state.idmap"] ?? "");
  if (onDisk.length === 0) return [...members, { dir: volume, name: "rootfs" }];
  progress("Unshifting the rootfs");
  await run("cp", ["-a", "--reflink=auto", "--", join(volume, "rootfs"), join(scratch, "rootfs")], { signal: ctx.op.signal });
  await shiftOwnership(join(scratch, "rootfs"), onDisk, undefined);
  return [...members, { dir: scratch, name: "rootfs" }];
}

/**
 * The image's metadata.yaml: the one the instance came with (its templates still refer to it),
 * with the request's properties over its own, the instance's architecture, a new creation
 * date, and the expiry asked for.
 */
async function metadataYaml(volume: string, architecture: string, properties: Record<string, string>, expires?: Date): Promise<string> {
  let meta: Record<string, unknown> = {};
  const text = await readFile(join(volume, "metadata.yaml"), "utf8").catch(() => undefined);
  if (text !== undefined) {
    const doc: unknown = parseYaml(text);
    if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) meta = doc as Record<string, unknown>;
  }
  const own = typeof meta.properties === "object" && meta.properties !== null ? (meta.properties as Record<string, string>) : {};
  const out: Record<string, unknown> = {
    ...meta,
    architecture,
    creation_date: Math.floor(Date.now() / 1000),
    properties: { ...own, ...properties },
  };
  if (expires) out.expiry_date = Math.floor(expires.getTime() / 1000);
  else delete out.expiry_date;
  return stringify(out, { lineWidth: 0 });
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
