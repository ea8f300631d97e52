/**
 * The client's remotes: `$LODGE_CONF`, else `~/.config/lodge/config.yml`, in the shape of lxc's
 * config.yml:
 *
 * ```yaml
 * default-remote: local
 * remotes:
 *   images:
 *     addr: https://images.example.org
 *     protocol: simplestreams
 *     public: true
 * ```
 *
 * `local` (the daemon's unix socket) always exists and can be neither removed nor renamed.
 * For now other remotes are image sources only: the daemon pulls from them.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { loadYaml } from "./yaml.js";

export const PROTOCOLS = ["lxd", "simplestreams"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export interface Remote {
  addr: string;
  protocol: Protocol;
  public: boolean;
}

export interface RemoteConfig {
  defaultRemote: string;
  remotes: Record<string, Remote>;
}

export const LOCAL = "local";
export const LOCAL_REMOTE: Remote = { addr: "unix://", protocol: "lxd", public: false };

/** A bad config file or a bad remote: the message names the file, remote or field. */
export class RemoteConfigError extends Error {
  override name = "RemoteConfigError";
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LODGE_CONF) return env.LODGE_CONF;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "lodge", "config.yml");
}

export function defaultConfig(): RemoteConfig {
  return { defaultRemote: LOCAL, remotes: { [LOCAL]: { ...LOCAL_REMOTE } } };
}

/** A remote name is a word: no ":" (it ends a remote in "remote:image"), no "/" or spaces. */
export function checkRemoteName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new RemoteConfigError(`Invalid remote name "${name}": use letters, digits, ".", "_" and "-", starting with a letter or digit`);
}

/** An image server's address: an http(s) URL with a host, or unix:// and a socket path. */
export function checkRemoteAddr(name: string, addr: string): string {
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw new RemoteConfigError(`Invalid address "${addr}" for remote "${name}": expected a URL like https://images.example.org`);
  }
  // unix:///path/to/unix.socket: another daemon on this host (LXD protocol).
  if (url.protocol === "unix:") {
    if (!url.pathname.startsWith("/") || url.pathname === "/")
      throw new RemoteConfigError(`Invalid address "${addr}" for remote "${name}": give the socket's absolute path, unix:///path/to/unix.socket`);
    return addr;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new RemoteConfigError(`Invalid address "${addr}" for remote "${name}": use https://, http:// or unix:///path/to/unix.socket`);
  if (!url.hostname) throw new RemoteConfigError(`Invalid address "${addr}" for remote "${name}": no host`);
  // Kept as written, minus a trailing slash, so "images:" and the server agree on paths.
  return addr.replace(/\/+$/, "");
}

export function checkProtocol(name: string, protocol: string): Protocol {
  if (!(PROTOCOLS as readonly string[]).includes(protocol))
    throw new RemoteConfigError(`Invalid protocol "${protocol}" for remote "${name}": use ${PROTOCOLS.join(" or ")}`);
  return protocol as Protocol;
}

/** Checks a parsed config file (YAML already turned into values); `where` names the file in errors. */
export function validateRemoteConfig(raw: unknown, where = "config"): RemoteConfig {
  const cfg = defaultConfig();
  if (raw === null || raw === undefined) return cfg;
  if (typeof raw !== "object" || Array.isArray(raw)) throw new RemoteConfigError(`Invalid ${where}: expected a YAML map`);
  const doc = raw as Record<string, unknown>;
  for (const k of Object.keys(doc))
    if (k !== "default-remote" && k !== "remotes") throw new RemoteConfigError(`Invalid ${where}: unknown key "${k}"`);
  const remotes = doc.remotes ?? {};
  if (typeof remotes !== "object" || remotes === null || Array.isArray(remotes))
    throw new RemoteConfigError(`Invalid ${where}: "remotes" must be a map of name to remote`);
  for (const [name, value] of Object.entries(remotes as Record<string, unknown>)) {
    checkRemoteName(name);
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new RemoteConfigError(`Invalid ${where}: remote "${name}" must be a map with addr, protocol, public`);
    const r = value as Record<string, unknown>;
    for (const k of Object.keys(r))
      if (!["addr", "protocol", "public", "auth_type"].includes(k))
        throw new RemoteConfigError(`Invalid ${where}: remote "${name}" has unknown key "${k}"`);
    if (name === LOCAL) {
      if (r.addr !== undefined && r.addr !== LOCAL_REMOTE.addr)
        throw new RemoteConfigError(`Invalid ${where}: remote "local" is the daemon's unix socket (addr ${LOCAL_REMOTE.addr})`);
      continue;
    }
    if (typeof r.addr !== "string") throw new RemoteConfigError(`Invalid ${where}: remote "${name}" needs an addr`);
    if (r.public !== undefined && typeof r.public !== "boolean")
      throw new RemoteConfigError(`Invalid ${where}: remote "${name}": public must be true or false`);
    cfg.remotes[name] = {
      addr: checkRemoteAddr(name, r.addr),
      protocol: checkProtocol(name, r.protocol === undefined ? "lxd" : String(r.protocol)),
      public: r.public === true,
    };
  }
  const def = doc["default-remote"];
  if (def !== undefined) {
    if (typeof def !== "string" || !(def in cfg.remotes))
      throw new RemoteConfigError(`Invalid ${where}: default-remote "${String(def)}" is not a configured remote`);
    cfg.defaultRemote = def;
  }
  return cfg;
}

/** The file's shape: local is implicit, so it is not written. */
export function serializableConfig(cfg: RemoteConfig): Record<string, unknown> {
  const remotes: Record<string, Remote> = {};
  for (const [name, r] of Object.entries(cfg.remotes)) if (name !== LOCAL) remotes[name] = r;
  return { "default-remote": cfg.defaultRemote, remotes };
}


/** Reads the config file; a missing file is the default config (just `local`). */
export async function loadRemoteConfig(path = configPath()): Promise<RemoteConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return defaultConfig();
    throw new RemoteConfigError(`Cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = (await loadYaml()).parse(text);
  } catch (e) {
    throw new RemoteConfigError(`Invalid YAML in ${path}: ${(e as Error).message}`);
  }
  return validateRemoteConfig(raw, path);
}

/** Writes the config atomically (temp file + rename), mode 0600, creating its directory. */
export async function saveRemoteConfig(cfg: RemoteConfig, path = configPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, (await loadYaml()).stringify(serializableConfig(cfg)), { mode: 0o600 });
  await rename(tmp, path);
}

/** The remote called `name`; errors name it when it does not exist. */
export function getRemote(cfg: RemoteConfig, name: string): Remote {
  const r = cfg.remotes[name];
  if (!r) throw new RemoteConfigError(`Remote "${name}" doesn't exist (see \`lodge remote list\`)`);
  return r;
}

/** The local daemon (`unix://`, i.e. $LODGE_DIR/unix.socket); `unix:///path` is another daemon on this host. */
export const isLocal = (r: Remote) => r.addr === "unix://" || r.addr === "unix:";
