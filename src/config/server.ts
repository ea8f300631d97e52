import { etagOf } from "../api/etag.js";
import { preconditionFailed } from "../api/errors.js";
import type { DocumentStore } from "../state/store.js";
import type { EventHub } from "../core/events.js";
import { validateConfig, type KeyTable } from "./keys.js";

/** Server-wide keys Lodge implements. Later capabilities (remote access, cluster) add theirs. */
export const SERVER_KEYS: KeyTable = {
  "images.remote_cache_expiry": {
    type: "int",
    default: "10",
    description: "Days after which an unused cached remote image is removed",
    validate: nonNegative,
  },
  "images.auto_update_interval": {
    type: "int",
    default: "6",
    description: "Hours between checks for newer versions of images (0 disables)",
    validate: nonNegative,
  },
  "images.auto_update_cached": {
    type: "bool",
    default: "true",
    description: "Whether images cached from remotes are refreshed automatically",
  },
  "images.compression_algorithm": {
    type: "string",
    default: "gzip",
    description: "Compression for new images (gzip, xz, zstd, bzip2, none)",
    validate: (v) => {
      if (!["gzip", "xz", "zstd", "bzip2", "none", "lzma"].includes(v)) throw new Error(`unknown algorithm "${v}"`);
    },
  },
};

function nonNegative(v: string): void {
  if (Number(v) < 0) throw new Error("must be zero or more");
}

const KEY = "config/server";

/** The server's config (`GET/PUT/PATCH /1.0`), persisted in the state store. */
export class ServerConfig {
  constructor(
    private readonly store: DocumentStore,
    private readonly events: EventHub,
  ) {}

  async get(): Promise<Record<string, string>> {
    return (await this.store.get<Record<string, string>>(KEY))?.value ?? {};
  }

  /** The effective value of a key: its set value, else its default. */
  async value(key: keyof typeof SERVER_KEYS & string): Promise<string | undefined> {
    return (await this.get())[key] ?? SERVER_KEYS[key]?.default;
  }

  /** Config as shown to clients: secrets are reported as set, never in clear. */
  async visible(): Promise<Record<string, string>> {
    return maskSecrets(await this.get());
  }

  async etag(): Promise<string> {
    return etagOf(await this.visible());
  }

  /** PUT semantics: the whole config is replaced. */
  async replace(config: Record<string, unknown>, ifMatch?: string): Promise<void> {
    await this.write(ifMatch, () => config);
  }

  /** PATCH semantics: given keys are set; an empty value unsets a key. */
  async patch(config: Record<string, unknown>, ifMatch?: string): Promise<void> {
    await this.write(ifMatch, (cur) => ({ ...cur, ...config }));
  }

  private async write(ifMatch: string | undefined, next: (cur: Record<string, string>) => Record<string, unknown>) {
    const changed = await this.store.txn(async (tx) => {
      const cur = (await tx.get<Record<string, string>>(KEY))?.value ?? {};
      if (ifMatch && ifMatch !== etagOf(maskSecrets(cur)))
        throw preconditionFailed("The server config changed since it was read (ETag mismatch); read it again");
      const validated = validateConfig(SERVER_KEYS, next(cur), ["user."], "server");
      for (const [k, v] of Object.entries(validated)) if (v === "") delete validated[k];
      tx.put(KEY, validated);
      return Object.keys({ ...cur, ...validated }).filter((k) => cur[k] !== validated[k]);
    });
    if (changed.length > 0) this.events.lifecycle("config-updated", "/1.0", { keys: changed });
  }
}

function maskSecrets(cfg: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg)) out[k] = SERVER_KEYS[k]?.secret ? "true" : v;
  return out;
}
