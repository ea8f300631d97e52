/**
 * Network forwards (/1.0/networks/<n>/forwards): a listen address whose ports lead to
 * instance addresses on the network. Stored one document per forward; every change rewrites
 * the network's forward rules on the host, and is undone in the store when the host refuses.
 */
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import { etagOf } from "../api/etag.js";
import type { NetworkForward, NetworkForwardsPost } from "../api/network.js";
import { validateConfig } from "../config/keys.js";
import type { DocumentStore } from "../state/store.js";
import type { NetworkDriver } from "./driver.js";
import { checkForwardPort, checkListenAddress, checkTarget, forwardRules } from "./forward-rules.js";
import { forwardKey, forwardPrefix, type ForwardRecord, type NetworkRecord } from "./record.js";
import type { NetworkService } from "./service.js";

const FORWARD_KEYS = { target_address: { type: "string" as const, description: "Where ports not listed go" } };

export class NetworkForwards {
  constructor(private readonly d: { store: DocumentStore; driver: NetworkDriver; networks: NetworkService }) {}

  etag(f: ForwardRecord): string {
    return etagOf({ config: f.config, description: f.description, ports: f.ports });
  }

  view(f: ForwardRecord): NetworkForward {
    return { listen_address: f.listen_address, description: f.description, config: f.config, ports: f.ports, location: "none" };
  }

  async list(project: string, network: string): Promise<ForwardRecord[]> {
    await this.d.networks.record(project, network);
    return (await this.d.store.list<ForwardRecord>(forwardPrefix(project, network))).map((d) => d.value);
  }

  async get(project: string, network: string, listen: string): Promise<ForwardRecord> {
    await this.d.networks.record(project, network);
    const doc = await this.d.store.get<ForwardRecord>(forwardKey(project, network, listen));
    if (!doc) throw notFound(`Network forward "${listen}" not found`);
    return doc.value;
  }

  async create(project: string, network: string, req: NetworkForwardsPost): Promise<ForwardRecord> {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw badRequest("The request body must be a network forward object");
    const listen = checkListenAddress(req.listen_address);
    return this.change(project, network, async (net) => {
      if (await this.d.store.get(forwardKey(project, network, listen))) throw conflict(`A forward for listen address ${listen} already exists on network "${network}"`);
      for (const doc of await this.d.store.list<ForwardRecord>("network-forwards/"))
        if (doc.value.listen_address === listen) throw conflict(`Listen address ${listen} is already forwarded by network "${doc.value.network}"`);
      return { network, project, listen_address: listen, ...this.body(net, req) };
    });
  }

  async update(project: string, network: string, listen: string, req: Partial<NetworkForwardsPost>, mode: "put" | "patch", ifMatch?: string): Promise<void> {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw badRequest("The request body must be a network forward object");
    await this.change(project, network, async (net) => {
      const before = await this.get(project, network, listen);
      if (ifMatch && ifMatch !== this.etag(before)) throw preconditionFailed(`Network forward "${listen}" changed since it was read (ETag mismatch)`);
      const merged = mode === "put" ? req : { description: req.description ?? before.description, config: { ...before.config, ...(req.config ?? {}) }, ports: req.ports ?? before.ports };
      if (merged.ports === null) merged.ports = [];
      return { ...before, ...this.body(net, merged) };
    });
  }

  async delete(project: string, network: string, listen: string): Promise<void> {
    await this.change(project, network, async () => {
      await this.get(project, network, listen);
      return { delete: listen };
    });
  }

  private body(net: NetworkRecord, req: Partial<NetworkForwardsPost>): Pick<ForwardRecord, "description" | "config" | "ports"> {
    const cidrs = ["ipv4", "ipv6"].map((f) => net.config[`${f}.address`]).filter((a): a is string => !!a && a !== "none");
    const config = validateConfig(FORWARD_KEYS, (req.config ?? {}) as Record<string, unknown>, ["user."], "network forward");
    for (const [k, v] of Object.entries(config)) if (v === "") delete config[k];
    if (config.target_address) checkTarget(config.target_address, cidrs);
    // Go clients send a nil list as null.
    if (req.ports !== undefined && req.ports !== null && !Array.isArray(req.ports)) throw badRequest("ports must be a list");
    if (typeof (req.description ?? "") !== "string") throw badRequest("description must be a string");
    return { description: req.description ?? "", config, ports: (req.ports ?? []).map((p) => checkForwardPort(p, cidrs)) };
  }

  /**
   * Under the network's lock: `fn` says what the forward becomes (or that it goes); the store
   * is written, then the host rules; a host refusal puts the store back.
   */
  private async change(project: string, network: string, fn: (net: NetworkRecord) => Promise<ForwardRecord | { delete: string }>): Promise<ForwardRecord> {
    return this.d.networks.locks.with(`${project}/${network}`, `Network "${network}"`, 60_000, async () => {
      const net = await this.d.networks.record(project, network);
      const next = await fn(net);
      const listen = "delete" in next ? next.delete : next.listen_address;
      const key = forwardKey(project, network, listen);
      const before = await this.d.store.get<ForwardRecord>(key);
      if ("delete" in next) await this.d.store.delete(key);
      else await this.d.store.put(key, next);
      try {
        await this.d.driver.updateForwards(network, forwardRules(await this.listRaw(project, network)));
      } catch (e) {
        if (before) await this.d.store.put(key, before.value);
        else await this.d.store.delete(key);
        await this.d.driver.updateForwards(network, forwardRules(await this.listRaw(project, network))).catch(() => {});
        throw e;
      }
      return "delete" in next ? before!.value : next;
    });
  }

  private async listRaw(project: string, network: string): Promise<ForwardRecord[]> {
    return (await this.d.store.list<ForwardRecord>(forwardPrefix(project, network))).map((d) => d.value);
  }
}
