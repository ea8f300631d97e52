/**
 * `lodge image copy REMOTE:IMG local:` and `lodge image refresh`: the daemon does the
 * downloading (POST /1.0/images with a source of type "image"; POST .../refresh), this side
 * shows the operation's progress. Remotes are image sources only for now, so the destination
 * is always the local daemon.
 */
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import type { ImagesPostJson } from "../images/source.js";
import { UsageError } from "./exit.js";
import { looksLikeFingerprint, parseImageRef, resolveFingerprint } from "./image-ref.js";
import { waitWithProgress } from "./progress.js";
import { getRemote, isLocal, type RemoteConfig } from "./remote-config.js";

export interface CopyOptions {
  alias?: string[];
  copyAliases?: boolean;
  autoUpdate?: boolean;
  public?: boolean;
}

/**
 * The POST /1.0/images body that pulls `source` (REMOTE:IMG) from its remote. A name that
 * looks like a full fingerprint (or a long prefix of one) is sent as a fingerprint, any other
 * as an alias, which the daemon resolves on the remote.
 */
export function copyRequest(sourceText: string, destText: string, cfg: RemoteConfig, opts: CopyOptions = {}): ImagesPostJson {
  const src = parseImageRef(sourceText, cfg);
  const dest = parseImageRef(destText, cfg);
  if (dest.name) throw new UsageError(`Invalid destination "${destText}": name only the remote (e.g. "local:"); use --alias to name the copy`);
  if (!isLocal(getRemote(cfg, dest.remote)))
    throw new UsageError(`Cannot copy to remote "${dest.remote}": remotes are image sources only; copy to local:`);
  const remote = getRemote(cfg, src.remote);
  if (isLocal(remote)) throw new UsageError(`The image "${sourceText}" is already on the local daemon: use \`lodge image alias create\` to give it another name`);
  if (!src.name) throw new UsageError(`No image in "${sourceText}": use REMOTE:ALIAS or REMOTE:FINGERPRINT`);
  const byFingerprint = looksLikeFingerprint(src.name) && src.name.length >= 12;
  const aliases = new Set(opts.alias ?? []);
  if (opts.copyAliases && !byFingerprint) aliases.add(src.name);
  const body: ImagesPostJson = {
    source: {
      type: "image",
      mode: "pull",
      server: remote.addr,
      protocol: remote.protocol,
      ...(byFingerprint ? { fingerprint: src.name.toLowerCase() } : { alias: src.name }),
    },
    aliases: [...aliases].map((name) => ({ name, description: "" })),
  };
  if (opts.autoUpdate) body.auto_update = true;
  if (opts.public) body.public = true;
  return body;
}

/** Sends the copy request and waits, showing the download's progress; returns the new fingerprint. */
export async function copyImage(client: LodgeClient, body: ImagesPostJson): Promise<string> {
  const op = await waitWithProgress(client, () => client.post<Operation>("/1.0/images", body), { label: "Copying the image" });
  const fp = (op.metadata as { fingerprint?: unknown } | null)?.fingerprint;
  if (typeof fp !== "string" || !fp) throw new ApiError(500, "The copy finished without a fingerprint");
  return fp;
}

/** Asks the daemon to refresh an image from its source; true when a newer image came in. */
export async function refreshImage(client: LodgeClient, name: string): Promise<boolean> {
  const fp = await resolveFingerprint(client, name);
  const op = await waitWithProgress(client, () => client.post<Operation>(`/1.0/images/${fp}/refresh`), {
    label: "Refreshing the image",
  });
  return (op.metadata as { refreshed?: unknown } | null)?.refreshed === true;
}
