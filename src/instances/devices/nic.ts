/**
 * The volatile keys of NIC devices, as LXD keeps them: `volatile.<device>.hwaddr`, a MAC made
 * once (in LXD's 00:16:3e range) for a NIC that sets no `hwaddr`, so the interface keeps its
 * address across restarts, and `volatile.<device>.host_name`, the host-side interface of a
 * running bridged NIC that sets no `host_name` (chosen here rather than by liblxc, so a NIC
 * hot-plugged into a running container is named the same way): `veth…` for a container's veth
 * pair, `tap…` for a VM's tap device, as LXD names them; it is dropped at stop
 * (withoutHostNames). Pure but for randomness.
 */
import { randomBytes } from "node:crypto";

type Devices = Record<string, Record<string, string>>;

const KEY = /^volatile\.([^.]+)\.(hwaddr|host_name)$/;

export function randomHwaddr(): string {
  return `00:16:3e:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
}

export function randomHostName(kind: "veth" | "tap" = "veth"): string {
  return `${kind}${randomBytes(4).toString("hex")}`;
}

/** What the host end of an instance's NIC is: a veth (container) or a tap (VM). */
export function hostEndKind(type: string): "veth" | "tap" {
  return type === "virtual-machine" ? "tap" : "veth";
}

export interface NicVolatileOpts {
  running: boolean;
  /** The host end made for a running NIC (default veth). */
  kind?: "veth" | "tap";
}

function isNic(d: Record<string, string> | undefined): boolean {
  return d?.type === "nic";
}

/** NICs made of a veth pair have a host-side interface to name (all but macvlan). */
export function hasHostEnd(d: Record<string, string>): boolean {
  return d.type === "nic" && d.nictype !== "macvlan";
}

/**
 * The NIC volatile keys `config` should hold for the (expanded) `devices`: existing values are
 * kept, missing ones made, and the keys of devices that are gone (or no longer NICs, or that now
 * set the value themselves) are returned as "" (to delete). Returns only the keys that change.
 */
export function nicVolatileChanges(config: Record<string, string>, devices: Devices, opts: NicVolatileOpts): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, d] of Object.entries(devices)) {
    if (!isNic(d)) continue;
    if (!d.hwaddr && !config[`volatile.${name}.hwaddr`]) out[`volatile.${name}.hwaddr`] = randomHwaddr();
    if (opts.running && hasHostEnd(d) && !d.host_name && !config[`volatile.${name}.host_name`]) out[`volatile.${name}.host_name`] = randomHostName(opts.kind);
  }
  for (const key of Object.keys(config)) {
    const m = KEY.exec(key);
    if (!m) continue;
    const d = devices[m[1]!];
    const field = m[2] as "hwaddr" | "host_name";
    if (!isNic(d) || d![field] || (field === "host_name" && !hasHostEnd(d!))) out[key] = "";
  }
  return out;
}

/** `config` with the changes applied ("" deletes). `running`: host-side names are kept or made. */
export function withNicVolatile(config: Record<string, string>, devices: Devices, opts: NicVolatileOpts): Record<string, string> {
  const changes = nicVolatileChanges(config, devices, opts);
  if (Object.keys(changes).length === 0) return config;
  const out = { ...config };
  for (const [k, v] of Object.entries(changes)) {
    if (v === "") delete out[k];
    else out[k] = v;
  }
  return out;
}

/** `config` without the host-side interface names, which go with the interfaces at stop. */
export function withoutHostNames(config: Record<string, string>): Record<string, string> {
  if (!Object.keys(config).some((k) => KEY.test(k) && k.endsWith(".host_name"))) return config;
  return Object.fromEntries(Object.entries(config).filter(([k]) => !(KEY.test(k) && k.endsWith(".host_name"))));
}
