/**
 * Changing an image's writable fields (ImagePut: auto_update, properties, public, expires_at,
 * profiles): `image edit` through $EDITOR or stdin YAML, and `image set-property` /
 * `unset-property`. Every write is a PUT with If-Match, so a concurrent change is refused
 * instead of overwritten.
 */
import type { LodgeClient } from "../client/client.js";
import type { Image, ImagePut } from "../images/types.js";
import { UsageError } from "./exit.js";
import { fetchImage } from "./image-ref.js";
import { parseEditedMap, runEditorLoop } from "./editor.js";
import { loadYaml } from "./yaml.js";

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

/** Parses edited YAML into a PUT body; read-only or unknown keys are refused by name. */
export async function parseImagePut(text: string): Promise<Partial<ImagePut>> {
  const doc = await parseEditedMap(text, "image", WRITABLE);
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
  await runEditorLoop(HEADER + (await loadYaml()).stringify(writableFields(image), { lineWidth: 0 }), async (text) => put(await parseImagePut(text)), "image.yaml");
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
