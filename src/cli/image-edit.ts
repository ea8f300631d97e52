/**
 * Changing an image's writable fields (ImagePut: auto_update, properties, public, expires_at,
 * profiles): `image edit` through $EDITOR or stdin YAML, and `image set-property` /
 * `unset-property`. Every write is a PUT with If-Match, so a concurrent change is refused
 * instead of overwritten.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline/promises";
import type { LodgeClient } from "../client/client.js";
import type { Image, ImagePut } from "../images/types.js";
import { UsageError } from "./exit.js";
import { fetchImage } from "./image-ref.js";

const WRITABLE = ["auto_update", "properties", "public", "expires_at", "profiles"] as const;

/** The writable part of an image, as PUT takes it. */
export function writableFields(img: Image): ImagePut {
  return {
    auto_update: img.auto_update,
    properties: img.properties ?? {},
    public: img.public,
    expires_at: img.expires_at,
    profiles: img.profiles ?? [],
  };
}

async function yaml() {
  const mod = await import("yaml");
  return "parse" in mod ? mod : (mod as unknown as { default: typeof mod }).default;
}

/** Parses edited YAML into a PUT body; read-only or unknown keys are refused by name. */
export async function parseImagePut(text: string): Promise<Partial<ImagePut>> {
  let doc: unknown;
  try {
    doc = (await yaml()).parse(text);
  } catch (e) {
    throw new UsageError(`Invalid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new UsageError("Invalid image YAML: expected a map of fields");
  for (const k of Object.keys(doc))
    if (!(WRITABLE as readonly string[]).includes(k))
      throw new UsageError(`Invalid image YAML: "${k}" cannot be edited (editable: ${WRITABLE.join(", ")})`);
  const put = doc as Partial<ImagePut>;
  // YAML reads `os: 12` as a number; properties are strings.
  if (put.properties && typeof put.properties === "object")
    put.properties = Object.fromEntries(Object.entries(put.properties).map(([k, v]) => [k, v === null ? "" : String(v)]));
  return put;
}

const HEADER = `### This is a YAML representation of the image's editable fields.
### Any line starting with a '#' will be ignored.
###
### Editable: auto_update, properties, public, expires_at, profiles.
`;

/** `image edit`: stdin YAML when stdin is not a terminal, else $EDITOR until the PUT succeeds. */
export async function editImage(client: LodgeClient, name: string): Promise<void> {
  const { image, etag } = await fetchImage(client, name);
  const put = (body: Partial<ImagePut>) =>
    client.put(`/1.0/images/${image.fingerprint}`, body, { headers: etag ? { "If-Match": etag } : {} });
  if (!process.stdin.isTTY) {
    await put(await parseImagePut(await readStdin()));
    return;
  }
  let text = HEADER + (await yaml()).stringify(writableFields(image), { lineWidth: 0 });
  for (;;) {
    text = await runEditor(text);
    try {
      await put(await parseImagePut(text));
      return;
    } catch (e) {
      process.stderr.write(`Error: ${(e as Error).message}\n`);
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      await rl.question("Press enter to open the editor again or ctrl+c to abort the change");
      rl.close();
    }
  }
}

async function runEditor(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lodge-edit-"));
  const file = join(dir, "image.yaml");
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

/** Sets (value given) or removes (undefined) one property, with If-Match. */
export async function setProperty(client: LodgeClient, name: string, key: string, value: string | undefined): Promise<void> {
  if (!key) throw new UsageError("Invalid property: the key is empty");
  const { image, etag } = await fetchImage(client, name);
  const body = writableFields(image);
  if (value === undefined) delete body.properties[key];
  else body.properties[key] = value;
  await client.put(`/1.0/images/${image.fingerprint}`, body, { headers: etag ? { "If-Match": etag } : {} });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
