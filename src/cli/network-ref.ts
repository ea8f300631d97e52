/**
 * What the network verbs do with the API: the URLs of a network, its leases, state and
 * forwards; reading one with its ETag and writing it back with If-Match (a concurrent change
 * is refused rather than overwritten); and edited YAML as a PUT body.
 */
import { ApiError } from "../api/errors.js";
import type { LodgeClient } from "../client/client.js";
import { parseEditedMap } from "./editor.js";
import { UsageError } from "./exit.js";
import type { Network, NetworkForward, NetworkForwardPort, NetworkForwardPut, NetworkPut } from "./network-types.js";

export const networkUrl = (name: string, sub = "") => `/1.0/networks/${encodeURIComponent(name)}${sub}`;
export const forwardUrl = (network: string, listen: string) => networkUrl(network, `/forwards/${encodeURIComponent(listen)}`);

/** The fields `network edit` takes; what `network show` prints besides them is ignored. */
export const NETWORK_WRITABLE = ["description", "config"] as const;
const NETWORK_READONLY = ["name", "type", "managed", "status", "used_by", "locations"];
export const FORWARD_WRITABLE = ["description", "config", "ports"] as const;
const FORWARD_READONLY = ["listen_address", "location"];

/** GETs `url` and returns its metadata with the ETag the answer carried. */
export async function fetchWithEtag<T>(c: LodgeClient, url: string): Promise<{ value: T; etag?: string }> {
  const r = await c.raw<T>("GET", url);
  if (r.body.type === "error") throw new ApiError(r.body.error_code || r.status, r.body.error);
  const etag = r.headers.etag;
  return { value: r.body.metadata, etag: typeof etag === "string" ? etag : undefined };
}

export const ifMatch = (etag: string | undefined) => ({ headers: etag ? { "If-Match": etag } : ({} as Record<string, string>) });

export async function fetchNetwork(c: LodgeClient, name: string): Promise<{ network: Network; etag?: string }> {
  const { value, etag } = await fetchWithEtag<Network>(c, networkUrl(name));
  return { network: value, etag };
}

export function networkPut(n: Network): Required<NetworkPut> {
  return { description: n.description ?? "", config: { ...n.config } };
}

/** Reads, changes and writes back a managed network's editable fields. */
export async function updateNetwork(c: LodgeClient, name: string, change: (put: Required<NetworkPut>, current: Network) => void): Promise<void> {
  const { network, etag } = await fetchNetwork(c, name);
  if (!network.managed) throw new UsageError(`Network "${name}" is not managed by Lodge: only managed networks can be changed`);
  const put = networkPut(network);
  change(put, network);
  await c.put(networkUrl(name), put, ifMatch(etag));
}

export async function fetchForward(c: LodgeClient, network: string, listen: string): Promise<{ forward: NetworkForward; etag?: string }> {
  const { value, etag } = await fetchWithEtag<NetworkForward>(c, forwardUrl(network, listen));
  return { forward: value, etag };
}

export function forwardPut(f: NetworkForward): Required<NetworkForwardPut> {
  return { description: f.description ?? "", config: { ...f.config }, ports: (f.ports ?? []).map((p) => ({ ...p })) };
}

/** Reads, changes and writes back a forward's editable fields. */
export async function updateForward(
  c: LodgeClient,
  network: string,
  listen: string,
  change: (put: Required<NetworkForwardPut>, current: NetworkForward) => void,
): Promise<void> {
  const { forward, etag } = await fetchForward(c, network, listen);
  const put = forwardPut(forward);
  change(put, forward);
  await c.put(forwardUrl(network, listen), put, ifMatch(etag));
}

const strings = (m: unknown, what: string): Record<string, string> => {
  if (m === null || m === undefined) return {};
  if (typeof m !== "object" || Array.isArray(m)) throw new UsageError(`Invalid ${what}: expected a map of keys`);
  return Object.fromEntries(Object.entries(m as Record<string, unknown>).map(([k, v]) => [k, v === null ? "" : String(v)]));
};

/** Edited YAML as a network PUT body; read-only fields are ignored, unknown ones refused by name. */
export async function parseNetworkPut(text: string): Promise<NetworkPut> {
  const doc = await parseEditedMap(text, "network", [...NETWORK_WRITABLE, ...NETWORK_READONLY]);
  const out: NetworkPut = { config: strings(doc.config, "network config") };
  if (doc.description !== undefined) out.description = doc.description === null ? "" : String(doc.description);
  return out;
}

const PORT_FIELDS = ["description", "protocol", "listen_port", "target_address", "target_port"];

/** Edited YAML as a forward PUT body; each port needs protocol, listen_port and target_address. */
export async function parseForwardPut(text: string): Promise<NetworkForwardPut> {
  const doc = await parseEditedMap(text, "network forward", [...FORWARD_WRITABLE, ...FORWARD_READONLY]);
  const out: NetworkForwardPut = { config: strings(doc.config, "network forward config") };
  if (doc.description !== undefined) out.description = doc.description === null ? "" : String(doc.description);
  if (doc.ports !== undefined && doc.ports !== null) {
    if (!Array.isArray(doc.ports)) throw new UsageError("Invalid network forward YAML: ports must be a list");
    out.ports = doc.ports.map((p, n): NetworkForwardPort => {
      const m = strings(p, `port ${n + 1}`);
      for (const k of Object.keys(m)) if (!PORT_FIELDS.includes(k)) throw new UsageError(`Invalid port ${n + 1}: unknown field "${k}" (fields: ${PORT_FIELDS.join(", ")})`);
      for (const k of ["protocol", "listen_port", "target_address"]) if (!m[k]) throw new UsageError(`Invalid port ${n + 1}: "${k}" is required`);
      return m as unknown as NetworkForwardPort;
    });
  }
  return out;
}
