/**
 * `lodge image …`: the verb's command tree. Each subcommand parses its words, then calls the
 * module that does the work (list/info, upload, export, edit, aliases, copy, build).
 */
import type { Command } from "commander";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { clientFor, globalsOf, withClient, type GlobalOptions } from "./globals.js";
import { registerAlias } from "./image-alias.js";
import { DEFAULT_IMAGE_COLUMNS } from "./image-columns.js";
import { copyImage, copyRequest, refreshImage } from "./image-copy.js";
import { editImage, setProperty } from "./image-edit.js";
import { exportImage } from "./image-export.js";
import { fetchImage, localRemote, parseImageRef, resolveFingerprint } from "./image-ref.js";
import { listImages, showImage } from "./image-show.js";
import { parseProperties, uploadImage } from "./image-upload.js";
import { waitWithProgress } from "./progress.js";
import { getRemote, isLocal, loadRemoteConfig } from "./remote-config.js";

const collect = (v: string, prev: string[]) => [...prev, v];

/** Runs `fn` on the local daemon for a `[local:]image` word, with the image's name. */
async function onLocalImage<T>(cmd: Command, text: string, what: string, fn: (c: LodgeClient, name: string, g: GlobalOptions) => Promise<T>): Promise<T> {
  const g = globalsOf(cmd);
  const cfg = await loadRemoteConfig();
  const ref = parseImageRef(text, cfg);
  localRemote(ref, cfg, what);
  if (!ref.name) throw new UsageError(`No image in "${text}": name an alias or a fingerprint`);
  return withClient(g, (c) => fn(c, ref.name, g));
}

export function register(program: Command): void {
  const image = program.command("image").description("Manage images: list, import, export, copy from remotes, build");

  image
    .command("list")
    .alias("ls")
    .description("List images; filters are key=value (properties) or words found in an alias or fingerprint")
    .argument("[filters...]", "[REMOTE:] then filters")
    .option("-c, --columns <letters>", "Columns: l alias, L all aliases, f fingerprint, F full fingerprint, p public, d description, a architecture, t type, s size, u upload date", DEFAULT_IMAGE_COLUMNS)
    .action(async (words: string[], opts: { columns: string }, cmd: Command) => {
      const g = globalsOf(cmd);
      const cfg = await loadRemoteConfig();
      await withClient(g, (c) => listImages(() => c, words, opts.columns, g.format, cfg));
    });

  image
    .command("info")
    .alias("show")
    .description("Show an image: a summary, or the whole object with --format json|yaml")
    .argument("<image>", "[local:]alias or fingerprint (prefix)")
    .action(async (text: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const cfg = await loadRemoteConfig();
      await withClient(g, (c) => showImage(c, text, g.format, cfg));
    });

  image
    .command("import")
    .description("Import an image from a unified tarball, or a metadata tarball and a rootfs (split)")
    .argument("<files...>", "TARBALL [ROOTFS] [local:]")
    .option("--alias <alias>", "Alias for the new image (repeatable)", collect, [])
    .option("--public", "Make the image public")
    .option("--property <key=value>", "Set an image property (repeatable)", collect, [])
    .action(async (words: string[], opts: { alias: string[]; public?: boolean; property: string[] }, cmd: Command) => {
      const files = [...words];
      if (files.length > 1 && /^[^/:]+:$/.test(files[files.length - 1]!)) {
        const cfg = await loadRemoteConfig();
        const dest = files.pop()!.slice(0, -1);
        if (!isLocal(getRemote(cfg, dest))) throw new UsageError(`Cannot import into remote "${dest}": remotes are image sources only`);
      }
      if (files.length > 2) throw new UsageError(`Too many files: give a unified tarball, or a metadata tarball and a rootfs`);
      const properties = parseProperties(opts.property);
      const fp = await withClient(globalsOf(cmd), (c) => uploadImage(c, files, { aliases: opts.alias, public: opts.public, properties }));
      process.stdout.write(`Image imported with fingerprint: ${fp}\n`);
    });

  image
    .command("export")
    .description("Export an image to files named as LXD names them")
    .argument("<image>", "[local:]alias or fingerprint (prefix)")
    .argument("[target]", "Directory, or base name of the file(s)", ".")
    .action(async (text: string, target: string, _opts, cmd: Command) => {
      const written = await onLocalImage(cmd, text, "image export", async (c, name) => {
        const { image: img } = await fetchImage(c, name);
        return exportImage(c, img.fingerprint, target, img.size);
      });
      for (const f of written) process.stdout.write(f + "\n");
    });

  image
    .command("delete")
    .alias("rm")
    .description("Delete images")
    .argument("<images...>", "[local:]aliases or fingerprints")
    .action(async (texts: string[], _opts, cmd: Command) => {
      for (const text of texts)
        await onLocalImage(cmd, text, "image delete", async (c, name) => {
          const fp = await resolveFingerprint(c, name);
          await waitWithProgress(c, () => c.delete<Operation>(`/1.0/images/${fp}`));
        });
    });

  image
    .command("edit")
    .description("Edit an image's properties and settings as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument("<image>", "[local:]alias or fingerprint (prefix)")
    .action(async (text: string, _opts, cmd: Command) => {
      await onLocalImage(cmd, text, "image edit", (c, name) => editImage(c, name));
    });

  image
    .command("set-property")
    .description("Set an image property")
    .argument("<image>", "[local:]alias or fingerprint (prefix)")
    .argument("<key>", "Property name")
    .argument("<value>", "Property value")
    .action(async (text: string, key: string, value: string, _opts, cmd: Command) => {
      await onLocalImage(cmd, text, "image set-property", (c, name) => setProperty(c, name, key, value));
    });

  image
    .command("unset-property")
    .description("Remove an image property")
    .argument("<image>", "[local:]alias or fingerprint (prefix)")
    .argument("<key>", "Property name")
    .action(async (text: string, key: string, _opts, cmd: Command) => {
      await onLocalImage(cmd, text, "image unset-property", (c, name) => setProperty(c, name, key, undefined));
    });

  image
    .command("copy")
    .alias("cp")
    .description("Copy an image from a remote image server to the local daemon (the daemon downloads it)")
    .argument("<source>", "REMOTE:alias or REMOTE:fingerprint")
    .argument("<destination>", "local:")
    .option("--alias <alias>", "Alias for the copy (repeatable)", collect, [])
    .option("--copy-aliases", "Also give the copy the alias it was named by")
    .option("--auto-update", "Keep the copy up to date with its source")
    .option("--public", "Make the copy public")
    .action(async (source: string, dest: string, opts: { alias: string[]; copyAliases?: boolean; autoUpdate?: boolean; public?: boolean }, cmd: Command) => {
      const body = copyRequest(source, dest, await loadRemoteConfig(), opts);
      const fp = await withClient(globalsOf(cmd), (c) => copyImage(c, body));
      process.stdout.write(`Image copied with fingerprint: ${fp}\n`);
    });

  image
    .command("refresh")
    .description("Refresh images from their source")
    .argument("<images...>", "[local:]aliases or fingerprints")
    .action(async (texts: string[], _opts, cmd: Command) => {
      for (const text of texts) {
        const refreshed = await onLocalImage(cmd, text, "image refresh", (c, name) => refreshImage(c, name));
        process.stdout.write(refreshed ? `Image "${text}" refreshed\n` : `Image "${text}" is already up to date\n`);
      }
    });

  image
    .command("build")
    .description("Build an image from a YAML definition here, and optionally import it")
    .argument("<definition>", "Definition file, e.g. images/busybox.yaml")
    .option("--split", "Build a split image (metadata tarball + rootfs.squashfs) instead of one tarball")
    .option("-o, --output <dir>", "Where the image files go (default: the current directory; a temporary one with --import)")
    .option("--import", "Import the built image into the daemon")
    .option("--alias <alias>", "Alias for the imported image (repeatable; with --import)", collect, [])
    .option("--public", "Make the imported image public (with --import)")
    .action(async (def: string, opts: { split?: boolean; output?: string; import?: boolean; alias: string[]; public?: boolean }, cmd: Command) => {
      if (opts.alias.length && !opts.import) throw new UsageError("--alias needs --import");
      const { buildCommand } = await import("./image-build.js");
      const g = globalsOf(cmd);
      let client: LodgeClient | undefined;
      try {
        const out = await buildCommand(def, opts, () => (client ??= clientFor(g)));
        if (!opts.import || opts.output) for (const f of out.files) process.stdout.write(f + "\n");
        process.stdout.write(
          out.imported ? `Image imported with fingerprint: ${out.imported}\n` : `Image built with fingerprint: ${out.fingerprint}\n`,
        );
      } finally {
        client?.close();
      }
    });

  registerAlias(image);
}
