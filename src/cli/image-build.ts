/**
 * `lodge image build DEF.yaml`: runs the image builder here (not in the daemon), printing its
 * progress lines on stderr, then optionally uploads the result. Loaded only by this subcommand:
 * the builder is the heaviest code the CLI carries.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildImage, loadDefinition } from "../images/builder/index.js";
import type { LodgeClient } from "../client/client.js";
import { uploadImage, type UploadOptions } from "./image-upload.js";

export interface BuildCliOptions {
  split?: boolean;
  output?: string;
  import?: boolean;
  alias?: string[];
  public?: boolean;
}

export interface BuildOutcome {
  files: string[];
  fingerprint: string;
  imported?: string;
}

/**
 * Builds `defPath`. With --import and no --output the files go to a temporary directory that is
 * removed once they are uploaded; otherwise they stay in --output (default: the current one).
 */
export async function buildCommand(
  defPath: string,
  opts: BuildCliOptions,
  client: () => LodgeClient,
  log: (line: string) => void = (l) => process.stderr.write(l + "\n"),
): Promise<BuildOutcome> {
  const def = await loadDefinition(defPath).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") throw new Error(`Image definition "${defPath}" not found`);
    throw e;
  });
  const scratch = opts.import && !opts.output ? await mkdtemp(join(tmpdir(), "lodge-build-out-")) : undefined;
  try {
    const outDir = scratch ?? resolve(opts.output ?? ".");
    const result = await buildImage(def, { outDir, format: opts.split ? "split" : "unified", onProgress: log });
    const outcome: BuildOutcome = { files: result.files, fingerprint: result.fingerprint };
    if (opts.import) {
      const up: UploadOptions = { aliases: opts.alias, public: opts.public };
      outcome.imported = await uploadImage(client(), result.files, up);
    }
    return outcome;
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
