/**
 * `lodge file push|pull|delete|edit`: the command tree; the transfers are in file-transfer.ts.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import type { LodgeClient } from "../client/client.js";
import { UsageError } from "./exit.js";
import { deletePath, pullBytes, pullPath, pullTarget, pushBytes, pushPath, pushTarget } from "./file-transfer.js";
import { globalsOf, withClient } from "./globals.js";
import { parseId, parseInstancePath, parseMode, type InstancePath } from "./instance-args.js";
import type { VerbModule } from "./program.js";

interface PushOpts {
  recursive?: boolean;
  createDirs?: boolean;
  uid?: string;
  gid?: string;
  mode?: string;
}

/** Splits `SRC… NAME/PATH` / `NAME/PATH… DEST`: the last word is the destination. */
export function splitTransfer(words: readonly string[], verb: string): { sources: string[]; dest: string } {
  if (words.length < 2) throw new UsageError(`file ${verb} needs at least a source and a destination`);
  return { sources: words.slice(0, -1), dest: words[words.length - 1]! };
}

async function isLocalDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

function registerFile(program: Command): void {
  const file = program.command("file").description("Move files in and out of instances: push, pull, delete, edit");

  file
    .command("push")
    .description("Copy local files into an instance")
    .argument("<paths...>", "SOURCE… NAME/PATH (a PATH ending in / is a directory)")
    .option("-r, --recursive", "Push directories recursively")
    .option("-p, --create-dirs", "Create missing parent directories")
    .option("--uid <uid>", "Owner of the files in the instance")
    .option("--gid <gid>", "Group of the files in the instance")
    .option("--mode <mode>", "Mode of the files in the instance (octal; default: the local mode)")
    .action(async (words: string[], opts: PushOpts, cmd: Command) => {
      const { sources, dest } = splitTransfer(words, "push");
      const target = parseInstancePath(dest);
      const own = {
        uid: opts.uid === undefined ? undefined : parseId(opts.uid, "--uid"),
        gid: opts.gid === undefined ? undefined : parseId(opts.gid, "--gid"),
        mode: opts.mode === undefined ? undefined : parseMode(opts.mode),
      };
      const intoDir = dest.endsWith("/") || sources.length > 1 || !!opts.recursive;
      await withClient(globalsOf(cmd), async (c) => {
        for (const src of sources) {
          if (src === "-") {
            if (intoDir) throw new UsageError('Standard input ("-") needs a file path as the destination');
            await pushBytes(c, target, await readStdin(), { ...own, mode: own.mode ?? 0o644 });
            continue;
          }
          await pushPath(c, src, pushTarget(src, target, intoDir), { ...own, recursive: opts.recursive, parents: opts.createDirs });
        }
      });
    });

  file
    .command("pull")
    .description("Copy files out of an instance")
    .argument("<paths...>", "NAME/PATH… DEST (DEST - is standard output)")
    .option("-r, --recursive", "Pull directories recursively")
    .option("-p, --create-dirs", "Create missing local parent directories")
    .action(async (words: string[], opts: { recursive?: boolean; createDirs?: boolean }, cmd: Command) => {
      const { sources, dest } = splitTransfer(words, "pull");
      const from = sources.map((s) => parseInstancePath(s));
      if (opts.createDirs && dest !== "-") await import("node:fs/promises").then((fs) => fs.mkdir(sources.length > 1 || dest.endsWith("/") ? dest : join(dest, ".."), { recursive: true }));
      const intoDir = dest !== "-" && (sources.length > 1 || dest.endsWith("/") || (await isLocalDir(dest)));
      await withClient(globalsOf(cmd), async (c) => {
        for (const src of from) await pullPath(c, src, dest === "-" ? "-" : pullTarget(src, dest, intoDir), opts);
      });
    });

  file
    .command("delete")
    .alias("rm")
    .description("Delete files in instances")
    .argument("<paths...>", "NAME/PATH…")
    .action(async (words: string[], _opts, cmd: Command) => {
      const paths = words.map((w) => parseInstancePath(w));
      await withClient(globalsOf(cmd), async (c) => {
        for (const p of paths) await deletePath(c, p);
      });
    });

  file
    .command("edit")
    .description("Edit a file in an instance with $EDITOR (or replace it with stdin when that is not a terminal)")
    .argument("<path>", "NAME/PATH")
    .action(async (word: string, _opts, cmd: Command) => {
      const p = parseInstancePath(word);
      await withClient(globalsOf(cmd), (c) => editFile(c, p));
    });
}

async function editFile(c: LodgeClient, p: InstancePath): Promise<void> {
  if (!process.stdin.isTTY) {
    const existing = await pullBytes(c, p).catch(() => undefined);
    await pushBytes(c, p, await readStdin(), existing?.info ?? { mode: 0o644 });
    return;
  }
  const { data, info } = await pullBytes(c, p);
  const dir = await mkdtemp(join(tmpdir(), "lodge-file-"));
  try {
    const local = join(dir, p.path.split("/").pop() || "file");
    await writeFile(local, data, { mode: 0o600 });
    const editor = process.env.VISUAL || process.env.EDITOR || "vi";
    const r = spawnSync("/bin/sh", ["-c", `${editor} "$1"`, "editor", local], { stdio: "inherit" });
    if (r.error || r.status !== 0) throw new UsageError(`The editor "${editor}" failed (${r.error?.message ?? r.status ?? r.signal}): nothing changed`);
    const edited = await readFile(local);
    if (!edited.equals(data)) await pushBytes(c, p, edited, info);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const ch of process.stdin) chunks.push(ch as Buffer);
  return Buffer.concat(chunks);
}

export function verb(name: string): VerbModule {
  if (name !== "file") throw new Error(`instance-file: no verb "${name}"`);
  return { register: registerFile };
}
