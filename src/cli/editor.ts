/**
 * The edit loop of `config edit` (and anything else edited as text): write the text to a
 * temporary file, run $VISUAL/$EDITOR on it, apply; on a failure show the error and reopen the
 * editor with the text as it was left, until it applies or the user aborts (ctrl+c).
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline/promises";
import { UsageError } from "./exit.js";
import { loadYaml } from "./yaml.js";

export async function runEditor(text: string, fileName = "instance.yaml"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lodge-edit-"));
  const file = join(dir, fileName);
  try {
    await writeFile(file, text, { mode: 0o600 });
    const editor = process.env.VISUAL || process.env.EDITOR || "vi";
    // Through the shell, so EDITOR="code --wait" works as it does for git.
    const r = spawnSync("/bin/sh", ["-c", `${editor} "$1"`, "editor", file], { stdio: "inherit" });
    if (r.error) throw new UsageError(`Cannot run the editor "${editor}": ${r.error.message}`);
    if (r.status !== 0) throw new UsageError(`The editor "${editor}" exited with ${r.status ?? r.signal}: nothing changed`);
    return await readFile(file, "utf8");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runEditorLoop(initial: string, apply: (text: string) => Promise<unknown>, fileName?: string): Promise<void> {
  let text = initial;
  for (;;) {
    text = await runEditor(text, fileName);
    try {
      await apply(text);
      return;
    } catch (e) {
      process.stderr.write(`Error: ${(e as Error).message}\n`);
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      await rl.question("Press enter to open the editor again or ctrl+c to abort the change");
      rl.close();
    }
  }
}

/**
 * Parses edited YAML into a map of fields, refusing by name any field that cannot be edited.
 * An empty document is an empty map (nothing to change).
 */
export async function parseEditedMap(text: string, what: string, writable: readonly string[]): Promise<Record<string, unknown>> {
  let doc: unknown;
  try {
    doc = (await loadYaml()).parse(text);
  } catch (e) {
    throw new UsageError(`Invalid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new UsageError(`Invalid ${what} YAML: expected a map of fields`);
  for (const k of Object.keys(doc))
    if (!writable.includes(k)) throw new UsageError(`Invalid ${what} YAML: "${k}" cannot be edited (editable: ${writable.join(", ")})`);
  return doc as Record<string, unknown>;
}

/** All of stdin as text: what `edit` and `create` take instead of an editor when stdin is not a terminal. */
export async function readStdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const ch of process.stdin) chunks.push(ch as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
