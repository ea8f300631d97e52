/**
 * The image builder: a checked ImageDefinition in, an LXD-format image out.
 *
 * ```ts
 * import { loadDefinition, buildImage } from "./images/builder/index.js";
 * const def = await loadDefinition("images/busybox.yaml");
 * const { files, fingerprint } = await buildImage(def, { outDir: ".", format: "split", onProgress: console.log });
 * ```
 *
 * Steps: source rootfs (busybox or debootstrap) → `post-unpack` actions → packages →
 * `post-packages` actions → clean-up → `files` → metadata.yaml + templates → pack. A
 * virtual-machine target adds a kernel, Lodge's initramfs and the agent's loader, and packs the
 * rootfs as an ext4 qcow2 disk (rootfs.img) with boot/vmlinuz and boot/initrd.img in the
 * metadata tarball (see vm-boot.ts). The work
 * directory is removed whether the build succeeds or fails, and a failed build removes
 * whatever it had started writing to outDir: it leaves nothing behind.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Revert } from "../../core/revert.js";
import { run, which } from "../../sys/exec.js";
import { debianArchitecture, lxdArchitecture } from "./architecture.js";
import { buildBusyboxRootfs } from "./busybox.js";
import { runInRootfs, type ProgressFn } from "./command.js";
import { bootstrapDebian, cleanDebian, installPackages } from "./debootstrap.js";
import type { ActionTrigger, ImageDefinition } from "./definition.js";
import { imageFingerprint, packSplit, packUnified, packVm, VM_BOOT_FILES, TAR_SUFFIX, writeMetadata, type Compression, type ImageMetadata } from "./pack.js";
import { writeRootfsFile } from "./rootfs-file.js";
import { buildInitramfs, cloudKernelDeb, findKernel, makeRootDisk, unpackKernelDeb, type KernelTree } from "./vm-boot.js";
import { prepareBusyboxVm, prepareDebianVm } from "./vm-rootfs.js";

/** What a Debian VM image adds: the cloud kernel, udev to load its modules, dbus for logind (which powers off on the ACPI power button). */
const VM_PACKAGES = ["linux-image-cloud-amd64", "udev", "kmod", "dbus"];

export type ImageFormat = "unified" | "split";

export interface BuildOptions {
  /** Where the image files go (created if missing). */
  outDir: string;
  /** unified: one tarball; split: metadata tarball + rootfs.squashfs. Default unified. */
  format?: ImageFormat;
  /** Tarball compression (and SquashFS compressor for split). Default xz. */
  compression?: Compression;
  /** Base name of the output files; default `<distribution>-<release>-<arch>-<variant>`. */
  name?: string;
  /** Parent of the temporary work directory; default the OS temp dir. */
  workDir?: string;
  /** Progress, one human-readable line at a time. */
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** The build time (creation_date, serial); default now. */
  now?: Date;
}

export interface BuildResult {
  /** The image files, in LXD's order: [unified] or [metadata, rootfs]. */
  files: string[];
  /** The fingerprint LXD will give the image (sha256 over files, in order). */
  fingerprint: string;
  metadata: ImageMetadata;
  format: ImageFormat;
  /** Total bytes of files. */
  size: number;
}

export class UnsupportedTargetError extends Error {}

/** Builds the image a definition describes; see the module comment for the steps. */
export async function buildImage(def: ImageDefinition, opts: BuildOptions): Promise<BuildResult> {
  const vm = def.targets.includes("virtual-machine");
  if (vm && def.targets.includes("container")) {
    throw new UnsupportedTargetError(
      "virtual-machine target: not yet supported together with the container target in one build (write one definition per target)",
    );
  }
  const format = opts.format ?? "unified";
  const compression = opts.compression ?? "xz";
  const progress: ProgressFn = opts.onProgress ?? (() => undefined);
  await requireTools(def, format, compression, vm);
  const now = opts.now ?? new Date();
  const started = Date.now();

  await mkdir(opts.outDir, { recursive: true });
  const undo = new Revert();
  const work = await mkdtemp(path.join(opts.workDir ?? os.tmpdir(), "lodge-build-"));
  try {
    const rootfs = path.join(work, "rootfs");
    await mkdir(rootfs, { mode: 0o755 });
    const hostname = hostnameFor(def.image.distribution);
    let release = def.image.release;
    let kernel: KernelTree | undefined;

    progress(`building ${def.image.distribution} ${release || ""} (${def.image.architecture}) from ${def.source.type}`.replace(/\s+/g, " "));
    if (def.source.type === "busybox") {
      const bb = await buildBusyboxRootfs(rootfs, { hostname });
      release ||= bb.version;
      progress(`busybox ${bb.version} rootfs ready`);
      await runActions(def, "post-unpack", rootfs, progress, opts.signal);
      await runActions(def, "post-packages", rootfs, progress, opts.signal);
      if (vm) {
        await prepareBusyboxVm(rootfs);
        kernel = await unpackKernelDeb(await cloudKernelDeb(progress), path.join(work, "kernel"));
      }
    } else {
      const suite = def.source.suite ?? def.image.release;
      release ||= suite;
      await bootstrapDebian(rootfs, {
        suite,
        mirror: def.source.mirror,
        components: def.source.components,
        architecture: debianArchitecture(def.image.architecture),
        variant: def.source.variant,
        hostname,
        onProgress: progress,
        signal: opts.signal,
      });
      await runActions(def, "post-unpack", rootfs, progress, opts.signal);
      await installPackages(rootfs, vm ? [...def.source.packages, ...VM_PACKAGES] : def.source.packages, progress, opts.signal);
      if (vm) {
        await prepareDebianVm(rootfs);
        kernel = await findKernel(rootfs);
      }
      await runActions(def, "post-packages", rootfs, progress, opts.signal);
      await cleanDebian(rootfs);
    }
    for (const f of def.files) {
      progress(`writing ${f.path}`);
      await writeRootfsFile(rootfs, f.path, f.content, f.mode);
    }

    // A VM image boots straight from its metadata: the kernel and Lodge's initramfs in boot/.
    if (kernel) {
      progress(`kernel ${kernel.version}: building the initramfs`);
      await mkdir(path.join(work, "boot"));
      await copyFile(kernel.vmlinuz, path.join(work, "boot/vmlinuz"));
      await buildInitramfs(kernel, path.join(work, "boot/initrd.img"), work);
      await rm(path.join(work, "kernel"), { recursive: true, force: true });
    }

    const creation = Math.floor(now.getTime() / 1000);
    const metadata = await writeMetadata(
      work,
      {
        architecture: def.image.architecture,
        creation_date: creation,
        expiry_date: creation + def.image.expirySeconds,
        properties: {
          os: def.image.distribution,
          release,
          architecture: def.image.architecture,
          description: def.image.description,
          variant: def.image.variant,
          serial: serialOf(now),
          ...(vm ? { type: "virtual-machine", ...VM_BOOT_FILES, "lodge.cmdline": def.vm.cmdline } : {}),
        },
      },
      def.templates,
    );

    const base = path.join(opts.outDir, opts.name ?? [def.image.distribution, release, def.image.architecture, def.image.variant].join("-"));
    const files =
      format === "unified" ? [base + TAR_SUFFIX[compression]] : [`${base}.meta${TAR_SUFFIX[compression]}`, vm ? `${base}.rootfs.img` : `${base}.squashfs`];
    // Written under temporary names beside the final ones, then renamed: a reader never sees a
    // half-written image, and a failure removes only what this build wrote.
    const tag = randomBytes(4).toString("hex");
    const partial = files.map((f) => `${f}.partial-${tag}`);
    for (const p of partial) undo.add(() => rm(p, { force: true }));
    if (vm) {
      const disk = format === "unified" ? path.join(work, "rootfs.img") : partial[1]!;
      await makeRootDisk(rootfs, disk, work, def.vm.sizeBytes, progress);
      await packVm(work, partial[0]!, format === "unified", compression, progress);
    } else if (format === "unified") await packUnified(work, partial[0]!, compression, progress);
    else await packSplit(work, partial[0]!, partial[1]!, compression, progress);
    const fingerprint = await imageFingerprint(partial);
    let size = 0;
    for (const p of partial) size += (await stat(p)).size;
    for (let i = 0; i < files.length; i++) await rename(partial[i]!, files[i]!);
    undo.commit();
    progress(`image ${fingerprint.slice(0, 12)} built in ${((Date.now() - started) / 1000).toFixed(1)}s: ${files.join(", ")}`);
    return { files, fingerprint, metadata, format, size };
  } finally {
    await undo.run();
    await removeWorkDir(work);
  }
}

async function runActions(def: ImageDefinition, trigger: ActionTrigger, rootfs: string, progress: ProgressFn, signal?: AbortSignal): Promise<void> {
  for (const [i, a] of def.actions.entries()) {
    if (a.trigger !== trigger) continue;
    progress(`action ${i} (${trigger}): ${a.command.split("\n")[0]}`);
    try {
      await runInRootfs(rootfs, a.command, { signal, onLine: (l) => progress(`  ${l}`) });
    } catch (e) {
      throw new Error(`actions[${i}] (${trigger}) failed: ${(e as Error).message}`);
    }
  }
}

async function requireTools(def: ImageDefinition, format: ImageFormat, compression: Compression, vm: boolean): Promise<void> {
  const tools = ["tar", compression, "unshare", "chroot"];
  if (vm) tools.push("mkfs.ext4", "qemu-img", "dpkg-deb", "gzip");
  if (format === "split" && !vm) tools.push("mksquashfs");
  if (def.source.type === "debootstrap") tools.push("debootstrap");
  const missing = [];
  for (const t of tools) if (!(await which(t))) missing.push(t);
  if (missing.length) throw new Error(`the image builder needs ${missing.join(", ")} on PATH`);
  if (process.getuid?.() !== 0) throw new Error("the image builder must run as root (it creates root-owned files and device nodes)");
  if (def.source.type === "debootstrap") {
    const host = lxdArchitecture(os.machine());
    const ok = host === def.image.architecture || (host === "x86_64" && def.image.architecture === "i686");
    if (!ok) throw new Error(`image.architecture: cannot debootstrap ${def.image.architecture} on a ${host} host`);
  }
}

/**
 * Removes the work directory, but never through a mount point: fs.rm would descend into a
 * mount left inside the rootfs and delete the host's files there. The builder mounts only in
 * private namespaces, so this is a guard, not a step.
 */
async function removeWorkDir(work: string): Promise<void> {
  const mounted = async () =>
    (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .map((l) => l.split(" ")[4]?.replace(/\\040/g, " "))
      .filter((m): m is string => !!m && (m === work || m.startsWith(work + "/")));
  let mounts = await mounted();
  for (const m of mounts.sort().reverse()) await run("umount", ["-l", m], { allowFail: true });
  mounts = await mounted();
  if (mounts.length) throw new Error(`left ${work} in place: still mounted there: ${mounts.join(", ")}`);
  await rm(work, { recursive: true, force: true });
}

/** A hostname from the distribution name: lower case letters, digits and "-". */
function hostnameFor(distribution: string): string {
  return distribution.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63) || "lodge";
}

/** images.linuxcontainers.org style serial: YYYYMMDD_HHMM in UTC. */
function serialOf(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}_${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}
