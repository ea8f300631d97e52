import { isIPv4, isIPv6 } from "node:net";
import { badRequest, ApiError } from "../../api/errors.js";
import { parseBool, validateConfig, type KeyTable } from "../../config/keys.js";
import { tcRate } from "../../sys/nic-policy.js";
import { checkProxyDevice } from "../devices/proxy.js";

/** A device as the API carries it: a type and string options. */
export type DeviceConfig = Record<string, string>;
export type Devices = Record<string, DeviceConfig>;

const str = (description: string) => ({ type: "string" as const, description });
const bool = (description: string) => ({ type: "bool" as const, description });
const int = (description: string) => ({ type: "int" as const, description });

/** A bind mount's propagation (mount(8)'s names; r…: the sub-mounts too). */
export const PROPAGATIONS = ["private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave", "runbindable"] as const;
export type Propagation = (typeof PROPAGATIONS)[number];

/** NIC types for host interfaces; a managed network is named with `network` instead. */
export const NICTYPES = ["bridged", "macvlan", "p2p"];

/** Device types Lodge implements for containers and the keys each accepts (LXD's names). */
export const DEVICE_KEYS: Record<string, KeyTable> = {
  none: {},
  disk: {
    path: str("Mount point inside the instance"),
    source: str("Host path to bind (a directory or file)"),
    pool: str("Storage pool (root disk)"),
    size: { type: "size", description: "Root disk size (drivers with quotas)" },
    readonly: bool("Mount read-only"),
    shift: bool("Shift ownership into the instance's id map"),
    recursive: bool("Bind sub-mounts too"),
    required: bool("Fail to start when the source is missing"),
    propagation: str("Mount propagation (private, shared, slave, …)"),
  },
  nic: {
    nictype: str("bridged, macvlan or p2p"),
    parent: str("Host bridge (bridged) or host interface (macvlan)"),
    network: str("Managed network"),
    "ipv4.address": str("Static IPv4 address given by the managed network's DHCP"),
    "ipv6.address": str("Static IPv6 address given by the managed network's DHCPv6"),
    "security.mac_filtering": bool("Drop frames from the instance whose source MAC is not the NIC's"),
    "security.ipv4_filtering": bool("Drop IPv4 packets from the instance whose source is not the NIC's ipv4.address"),
    "limits.ingress": str("Bit rate into the instance (e.g. 100Mbit)"),
    "limits.egress": str("Bit rate out of the instance (e.g. 100Mbit)"),
    name: str("Interface name inside the instance"),
    hwaddr: str("MAC address"),
    mtu: int("MTU"),
    host_name: str("Host-side interface name"),
  },
  proxy: {
    listen: str("Where to listen: tcp:ADDR:PORT, udp:ADDR:PORT or unix:PATH"),
    connect: str("Where to connect: tcp:ADDR:PORT, udp:ADDR:PORT or unix:PATH"),
    bind: str("Which side listens: host (default) or instance"),
    uid: int("Owner of a listening unix socket"),
    gid: int("Group of a listening unix socket"),
    mode: str("Mode of a listening unix socket"),
    "security.uid": int("Who the forwarder acts as inside the instance (uid)"),
    "security.gid": int("Who the forwarder acts as inside the instance (gid)"),
    proxy_protocol: bool("Send a PROXY protocol v2 header to the upstream"),
    nat: bool("NAT mode (needs a managed network; not supported yet)"),
  },
  "unix-char": unixKeys(),
  "unix-block": unixKeys(),
};

function unixKeys(): KeyTable {
  return {
    source: str("Host device path"),
    path: str("Path inside the instance"),
    major: int("Major number"),
    minor: int("Minor number"),
    uid: int("Owner inside the instance"),
    gid: int("Group inside the instance"),
    mode: str("Mode inside the instance (octal)"),
    required: bool("Fail to start when the host device is missing"),
  };
}

/** Validates all devices of an instance; throws a 400 naming the device and the fault. */
export function validateDevices(devices: unknown): Devices {
  if (devices === undefined || devices === null) return {};
  if (typeof devices !== "object" || Array.isArray(devices)) throw badRequest("devices must be a map of name to device");
  const out: Devices = {};
  const paths = new Map<string, string>();
  const ifnames = new Map<string, string>();
  for (const [name, raw] of Object.entries(devices as Record<string, unknown>)) {
    try {
      out[name] = validateDevice(name, raw);
    } catch (e) {
      if (e instanceof ApiError) throw badRequest(`Invalid device "${name}": ${e.message}`);
      throw e;
    }
    // A unix device's path inside defaults to its source.
    const path = out[name]!.path || (out[name]!.type.startsWith("unix-") ? out[name]!.source : undefined);
    if (path && out[name]!.type !== "none") {
      const other = paths.get(path);
      if (other) throw badRequest(`Devices "${other}" and "${name}" both use path "${path}"`);
      paths.set(path, name);
    }
    // Each NIC's interface inside (its "name", else the device's name) is its own.
    if (out[name]!.type === "nic") {
      const ifname = out[name]!.name || name;
      const other = ifnames.get(ifname);
      if (other) throw badRequest(`Devices "${other}" and "${name}" both name the interface "${ifname}" inside the instance`);
      ifnames.set(ifname, name);
    }
  }
  return out;
}

function validateDevice(name: string, raw: unknown): DeviceConfig {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.length > 64)
    throw badRequest('device names use letters, digits, ".", "_" and "-"');
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw badRequest("a device is a map of keys to values");
  const { type, ...keys } = raw as Record<string, unknown>;
  if (typeof type !== "string" || type === "") throw badRequest('"type" is required');
  const table = DEVICE_KEYS[type];
  if (!table) throw badRequest(`unknown device type "${type}" (known: ${Object.keys(DEVICE_KEYS).join(", ")})`);
  const dev: DeviceConfig = { type, ...validateConfig(table, keys, [], `${type} device`) };
  CHECKS[type]?.(dev);
  return dev;
}

const need = (dev: DeviceConfig, key: string, why = "") => {
  if (!dev[key]) throw badRequest(`"${key}" is required${why}`);
};
const absolute = (dev: DeviceConfig, key: string) => {
  if (dev[key] !== undefined && !dev[key]!.startsWith("/")) throw badRequest(`"${key}" must be an absolute path`);
};

const CHECKS: Record<string, (dev: DeviceConfig) => void> = {
  disk: (dev) => {
    need(dev, "path");
    absolute(dev, "path");
    if (dev.path === "/") {
      need(dev, "pool", " for the root disk");
      if (dev.source) throw badRequest('the root disk ("path: /") takes a pool, not a source');
      return;
    }
    if (!dev.source) throw badRequest(dev.pool ? '"source" is required: the name of the custom volume in the pool' : '"source" is required');
    if (dev.pool && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(dev.source)) throw badRequest(`"source" ${JSON.stringify(dev.source)} is not a storage volume name`);
    if (dev.size) throw badRequest('"size" only applies to the root disk');
    if (dev.propagation && !PROPAGATIONS.includes(dev.propagation as Propagation))
      throw badRequest(`"propagation" ${JSON.stringify(dev.propagation)} is not one of ${PROPAGATIONS.join(", ")}`);
  },
  nic: (dev) => {
    if (!dev.network) {
      need(dev, "nictype", ' (or "network")');
      if (!NICTYPES.includes(dev.nictype!)) throw badRequest(`nictype "${dev.nictype}" is not supported (use ${NICTYPES.join(", ")}, or network=NETWORK)`);
      if (dev.nictype !== "p2p") need(dev, "parent", ` for a ${dev.nictype} nic`);
      else if (dev.parent) throw badRequest('a p2p nic has no "parent"');
      for (const k of ["ipv4.address", "ipv6.address"]) if (dev[k]) throw badRequest(`"${k}" needs a managed network (network=NETWORK)`);
    } else if (dev.nictype || dev.parent) {
      throw badRequest('"network" cannot be combined with "nictype" or "parent"');
    }
    if (dev["ipv4.address"] && !isIPv4(dev["ipv4.address"])) throw badRequest(`"ipv4.address" ${JSON.stringify(dev["ipv4.address"])} is not an IPv4 address`);
    if (dev["ipv6.address"] && !isIPv6(dev["ipv6.address"])) throw badRequest(`"ipv6.address" ${JSON.stringify(dev["ipv6.address"])} is not an IPv6 address`);
    if (dev.nictype === "macvlan") {
      for (const k of ["host_name", "security.mac_filtering", "security.ipv4_filtering", "limits.ingress", "limits.egress"])
        if (dev[k]) throw badRequest(`a macvlan nic has no host-side interface, so "${k}" cannot apply`);
    }
    for (const k of ["limits.ingress", "limits.egress"])
      if (dev[k]) {
        try {
          tcRate(dev[k]!);
        } catch (e) {
          throw badRequest(`"${k}": ${(e as Error).message}`);
        }
      }
    if (dev["security.ipv4_filtering"] && parseBool(dev["security.ipv4_filtering"]) && !dev["ipv4.address"])
      throw badRequest('"security.ipv4_filtering" needs the NIC\'s "ipv4.address" (the one address it may send from)');
    if (dev.hwaddr && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(dev.hwaddr))
      throw badRequest(`"hwaddr" ${JSON.stringify(dev.hwaddr)} is not a MAC address like 00:16:3e:12:34:56`);
    if (dev.mtu && (Number(dev.mtu) < 576 || Number(dev.mtu) > 65535)) throw badRequest('"mtu" must be between 576 and 65535');
    if (dev.name && !/^[A-Za-z0-9_.-]{1,15}$/.test(dev.name)) throw badRequest(`"name" ${JSON.stringify(dev.name)} is not a valid interface name`);
    if (dev.host_name && !/^[A-Za-z0-9_.-]{1,15}$/.test(dev.host_name)) throw badRequest(`"host_name" ${JSON.stringify(dev.host_name)} is not a valid interface name`);
  },
  proxy: checkProxyDevice,
  "unix-char": unixDevice,
  "unix-block": unixDevice,
};

function unixDevice(dev: DeviceConfig): void {
  if (!dev.source && !dev.path) throw badRequest('"source" or "path" is required');
  absolute(dev, "source");
  absolute(dev, "path");
  const inside = dev.path || dev.source!;
  if (inside.split("/").includes("..") || inside.replace(/\/+$/, "") === "") throw badRequest(`"path" ${JSON.stringify(inside)} is not a path inside the instance`);
  // The kernel's dev_t: 12-bit major, 20-bit minor.
  inRange(dev, "major", 4095);
  inRange(dev, "minor", 1048575);
  inRange(dev, "uid", 4294967294);
  inRange(dev, "gid", 4294967294);
  if (dev.mode && !/^0?[0-7]{3,4}$/.test(dev.mode)) throw badRequest(`"mode" ${JSON.stringify(dev.mode)} is not an octal mode like 0660`);
}

function inRange(dev: DeviceConfig, key: string, max: number): void {
  if (dev[key] === undefined || dev[key] === "") return;
  const n = Number(dev[key]);
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw badRequest(`"${key}" ${dev[key]} is out of range (0-${max})`);
}
