/**
 * proxy devices, with LXD's keys: forward connections between an address on the host and one
 * inside the instance. `listen` is where connections arrive, on the host (bind=host, the
 * default) or in the instance (bind=instance); `connect` is where each one goes, on the other
 * side. Addresses are `tcp:ADDR:PORTS`, `udp:ADDR:PORTS` (ADDR an IPv4 address or [IPv6], PORTS
 * like 80, 8000-8010 or 80,443) or `unix:/path` (`unix:@name`: an abstract socket). Listen
 * ports map one to one onto connect ports, or all onto a single one; any protocol forwards to
 * any other. uid, gid and mode set the owner and mode of a listening unix socket file (ids of
 * the side it is on); security.uid and security.gid are who the forwarder acts as inside the
 * instance. proxy_protocol sends a PROXY protocol v2 header to a stream upstream. nat=true is
 * refused: it needs a managed network, which Lodge does not have yet.
 *
 * Pure: no I/O. The container driver turns a ProxySpec into a forwarder (drivers/lxc/proxy.ts).
 */
import { isIP } from "node:net";
import { badRequest } from "../../api/errors.js";
import { parseBool } from "../../config/keys.js";

export type ProxyProtocol = "tcp" | "udp" | "unix";

export interface PortRange {
  first: number;
  last: number;
}

export interface ProxyAddress {
  protocol: ProxyProtocol;
  /** tcp/udp: an IP address (IPv6 without brackets). */
  host?: string;
  /** tcp/udp: the ports, in the order given. */
  ports?: PortRange[];
  /** unix: an absolute path, or @name for an abstract socket. */
  path?: string;
}

export interface ProxySpec {
  /** The device's name. */
  device: string;
  listen: ProxyAddress;
  connect: ProxyAddress;
  /** The side that listens; the other side connects. */
  bind: "host" | "instance";
  /** Owner, group and mode of a listening unix socket file (ids of the listening side). */
  uid: number;
  gid: number;
  mode: number;
  /** Who the forwarder acts as inside the instance (the instance's ids). */
  securityUid: number;
  securityGid: number;
  /** Send a PROXY protocol v2 header to the upstream. */
  proxyProtocol: boolean;
}

const MAX_ID = 4294967294;

/** A proxy device as a spec; a 400 naming the device and the key when it is not valid. */
export function parseProxyDevice(name: string, d: Record<string, string>): ProxySpec {
  try {
    return proxySpec(name, d);
  } catch (e) {
    throw badRequest(`Device "${name}": ${(e as Error).message}`);
  }
}

/** The checks of parseProxyDevice, with messages that name the key only (for validateDevices). */
export function checkProxyDevice(d: Record<string, string>): void {
  try {
    proxySpec("", d);
  } catch (e) {
    throw badRequest((e as Error).message);
  }
}

function proxySpec(device: string, d: Record<string, string>): ProxySpec {
  if (d.nat && parseBool(d.nat))
    throw new Error('"nat" mode forwards with NAT rules on a managed network, which Lodge does not have yet; leave nat unset (or false) to use a forwarder');
  if (!d.listen) throw new Error('"listen" is required');
  if (!d.connect) throw new Error('"connect" is required');
  const listen = parseProxyAddress(d.listen, "listen");
  const connect = parseProxyAddress(d.connect, "connect");
  const listenCount = portCount(listen);
  const connectCount = portCount(connect);
  if (connectCount !== 1 && connectCount !== listenCount)
    throw new Error(`"connect" has ${connectCount} ports for ${listenCount} listen ports: give one connect port, or as many as listen ports`);

  const bind = d.bind || "host";
  if (bind !== "host" && bind !== "instance") throw new Error(`"bind" ${JSON.stringify(d.bind)} must be host or instance`);

  const socketFile = listen.protocol === "unix" && !listen.path!.startsWith("@");
  for (const key of ["uid", "gid", "mode"])
    if (d[key] && !socketFile) throw new Error(`"${key}" only applies when "listen" is a unix socket path`);
  const mode = d.mode ? octal(d.mode) : 0o644;

  const proxyProtocol = d.proxy_protocol ? parseBool(d.proxy_protocol) : false;
  if (proxyProtocol && connect.protocol === "udp") throw new Error('"proxy_protocol" needs a tcp or unix "connect" address (a stream to put the header on)');

  return {
    device,
    listen,
    connect,
    bind,
    uid: id(d, "uid"),
    gid: id(d, "gid"),
    mode,
    securityUid: id(d, "security.uid"),
    securityGid: id(d, "security.gid"),
    proxyProtocol,
  };
}

function id(d: Record<string, string>, key: string): number {
  const v = d[key];
  if (!v) return 0;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > MAX_ID) throw new Error(`"${key}" ${v} is out of range (0-${MAX_ID})`);
  return n;
}

function octal(v: string): number {
  if (!/^0?[0-7]{3}$/.test(v)) throw new Error(`"mode" ${JSON.stringify(v)} is not an octal mode like 0660`);
  return parseInt(v, 8);
}

/** One address of a proxy device; `key` names it in errors. */
export function parseProxyAddress(addr: string, key: string): ProxyAddress {
  const m = /^(tcp|udp|unix):(.*)$/.exec(addr);
  if (!m) throw new Error(`"${key}" ${JSON.stringify(addr)} must look like tcp:127.0.0.1:80, udp:[::1]:53 or unix:/path`);
  const protocol = m[1] as ProxyProtocol;
  const rest = m[2]!;
  if (protocol === "unix") {
    if (!rest.startsWith("/") && !rest.startsWith("@")) throw new Error(`"${key}" unix socket ${JSON.stringify(rest)} must be an absolute path or @name`);
    if (rest === "@" || Buffer.byteLength(rest) > 107) throw new Error(`"${key}" unix socket ${JSON.stringify(rest)} must have a name of at most 107 bytes`);
    if (rest.includes("\0")) throw new Error(`"${key}" unix socket path has a NUL byte`);
    return { protocol, path: rest };
  }
  const hp = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(rest);
  if (!hp) throw new Error(`"${key}" ${JSON.stringify(addr)} needs ADDRESS:PORT, with an IPv6 address in brackets ([::1]:80)`);
  const host = hp[1] ?? hp[2]!;
  const family = isIP(host);
  if (hp[1] !== undefined ? family !== 6 : family !== 4)
    throw new Error(`"${key}" address ${JSON.stringify(host)} is not an IP address (an IPv4 address, or IPv6 in brackets)`);
  return { protocol, host, ports: parsePorts(hp[3]!, key) };
}

function parsePorts(text: string, key: string): PortRange[] {
  if (text === "") throw new Error(`"${key}" has no port`);
  return text.split(",").map((item) => {
    const r = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!r) throw new Error(`"${key}" port ${JSON.stringify(item)} is not a port or a range like 8000-8010`);
    const first = Number(r[1]);
    const last = r[2] === undefined ? first : Number(r[2]);
    for (const p of [first, last]) if (p < 1 || p > 65535) throw new Error(`"${key}" port ${p} is out of range (1-65535)`);
    if (last < first) throw new Error(`"${key}" port range ${item} ends before it starts`);
    return { first, last };
  });
}

/** How many endpoints an address stands for: its ports, or 1 for a unix socket. */
export function portCount(a: ProxyAddress): number {
  return a.ports ? a.ports.reduce((n, r) => n + r.last - r.first + 1, 0) : 1;
}

/** The canonical text of an address, as the forwarder takes it. */
export function formatProxyAddress(a: ProxyAddress): string {
  if (a.protocol === "unix") return `unix:${a.path}`;
  const host = a.host!.includes(":") ? `[${a.host}]` : a.host;
  const ports = a.ports!.map((r) => (r.first === r.last ? String(r.first) : `${r.first}-${r.last}`)).join(",");
  return `${a.protocol}:${host}:${ports}`;
}
