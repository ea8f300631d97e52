/** `lodge image list` and `lodge image info`: reading images, in the four output formats. */
import type { LodgeClient } from "../client/client.js";
import type { Image } from "../images/types.js";
import type { Format } from "./format.js";
import { imageColumns, imageSize, matchesFilters, sortImages } from "./image-columns.js";
import { localRemote, parseImageRef, fetchImage } from "./image-ref.js";
import { printList, printObject, renderDetails, shortTime } from "./output.js";
import { getRemote, isLocal, RemoteConfigError, type RemoteConfig } from "./remote-config.js";

/**
 * Splits `lodge image list`'s words into a remote and filters: the first word names a remote
 * when it has a ":" before any "=" (`images:`, `images:debian`); a filter follows the colon.
 */
export function listTarget(words: string[], cfg: RemoteConfig): { remote: string; filters: string[] } {
  const [first, ...rest] = words;
  if (first === undefined) return { remote: cfg.defaultRemote, filters: [] };
  const colon = first.indexOf(":");
  const eq = first.indexOf("=");
  if (colon === -1 || (eq !== -1 && eq < colon)) return { remote: cfg.defaultRemote, filters: words };
  const ref = parseImageRef(first, cfg);
  return { remote: ref.remote, filters: ref.name ? [ref.name, ...rest] : rest };
}

export async function listImages(client: () => LodgeClient, words: string[], columns: string | undefined, format: Format, cfg: RemoteConfig): Promise<void> {
  const cols = imageColumns(columns);
  const { remote, filters } = listTarget(words, cfg);
  const r = getRemote(cfg, remote);
  let all: Image[];
  if (isLocal(r)) all = (await client().get<Image[]>("/1.0/images?recursion=1")) ?? [];
  else if (r.protocol === "simplestreams") all = await (await import("./simplestreams-list.js")).listSimplestreams(r.addr);
  else
    throw new RemoteConfigError(
      `Listing the images of LXD remote "${remote}" is not supported yet: copy one with \`lodge image copy ${remote}:ALIAS local:\``,
    );
  await printList(cols, sortImages(all.filter((i) => matchesFilters(i, filters))), format);
}

export async function showImage(client: LodgeClient, text: string, format: Format, cfg: RemoteConfig): Promise<void> {
  const ref = parseImageRef(text, cfg);
  localRemote(ref, cfg, "image info");
  const { image } = await fetchImage(client, ref.name);
  if (format === "json" || format === "yaml") await printObject(image, format);
  else process.stdout.write(renderDetails(imageDetails(image), format));
}

const never = (iso: string | undefined) => shortTime(iso ?? "") || "never";

/** What `lxc image info` shows, in its order. */
export function imageDetails(i: Image): [string, string][] {
  const props = Object.entries(i.properties ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const rows: [string, string][] = [
    ["Fingerprint", i.fingerprint],
    ["Size", imageSize(i.size)],
    ["Architecture", i.architecture],
    ["Type", i.type || "container"],
    ["Public", i.public ? "yes" : "no"],
    ["Created", never(i.created_at)],
    ["Uploaded", never(i.uploaded_at)],
    ["Expires", never(i.expires_at)],
    ["Last used", never(i.last_used_at)],
    ["Properties", props.length ? props.map(([k, v]) => `${k}: ${v}`).join("\n") : "(none)"],
    ["Aliases", (i.aliases ?? []).length ? i.aliases.map((a) => a.name).join("\n") : "(none)"],
    ["Cached", i.cached ? "yes" : "no"],
    ["Auto update", i.auto_update ? "enabled" : "disabled"],
    ["Profiles", (i.profiles ?? []).length ? i.profiles.join("\n") : "(none)"],
  ];
  if (i.update_source?.server)
    rows.push(["Source", `${i.update_source.server} (${i.update_source.protocol}), alias ${i.update_source.alias || "-"}`]);
  return rows;
}
