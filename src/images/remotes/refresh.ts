import { badRequest } from "../../api/errors.js";
import type { EventHub } from "../../core/events.js";
import type { ImageSourceContext } from "../source.js";
import type { ImageStore } from "../store.js";
import { imageUrl, ZERO_TIME } from "../types.js";
import { hostArchitecture } from "./remote.js";
import { connectRemote, pullImage } from "./source.js";

export interface RefreshResult {
  refreshed: boolean;
  /** The image's fingerprint after the refresh (the new one when refreshed). */
  fingerprint: string;
}

/**
 * POST /1.0/images/<fp>/refresh and the auto-update task: asks the image's origin
 * (update_source: server, protocol, alias) which image the alias names now; when it is a
 * different one, downloads it with the old image's settings, moves the aliases over and
 * deletes the old image, as LXD's autoUpdateImage does.
 */
export class ImageRefresher {
  private readonly hostArch: string;
  private readonly running = new Map<string, Promise<RefreshResult>>();

  constructor(
    private readonly store: ImageStore,
    private readonly events: EventHub,
    opts: { hostArch?: string } = {},
  ) {
    this.hostArch = opts.hostArch ?? hostArchitecture();
  }

  /** Refreshes one image; concurrent refreshes of the same image share one run. */
  refresh(project: string, ref: string, op?: ImageSourceContext["op"]): Promise<RefreshResult> {
    const key = `${project}/${ref}`;
    const cur = this.running.get(key);
    if (cur) return cur;
    const p = this.run(project, ref, op).finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }

  private async run(project: string, ref: string, op?: ImageSourceContext["op"]): Promise<RefreshResult> {
    const old = await this.store.record(project, ref);
    const src = old.update_source;
    if (!src?.server || !src.alias)
      throw badRequest(`Image ${old.fingerprint.slice(0, 12)} has no update source: only images copied by alias from an image server can be refreshed`);
    const server = connectRemote(src.protocol, src.server, { certificate: src.certificate || undefined, hostArch: this.hostArch });
    const { image } = await pullImage({
      project,
      store: this.store,
      server,
      serverUrl: src.server,
      certificate: src.certificate || undefined,
      ref: src.alias,
      imageType: old.type,
      public: old.public,
      autoUpdate: old.auto_update,
      cached: old.cached,
      profiles: old.profiles,
      op,
    });
    if (image.fingerprint === old.fingerprint) {
      op?.updateMetadata({ refreshed: false });
      return { refreshed: false, fingerprint: old.fingerprint };
    }
    // The aliases follow the new image, then the old one goes (with no alias left to take along).
    for (const a of await this.store.aliases.records(project))
      if (a.target === old.fingerprint) await this.store.aliases.patch(project, a.name, { target: image.fingerprint });
    if (old.last_used_at !== ZERO_TIME) await this.store.markUsed(project, image.fingerprint);
    await this.store.delete(project, old.fingerprint);
    this.events.lifecycle("image-refreshed", imageUrl(old.fingerprint, project), { fingerprint: image.fingerprint }, project);
    op?.updateMetadata({ refreshed: true });
    return { refreshed: true, fingerprint: image.fingerprint };
  }
}
