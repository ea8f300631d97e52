/**
 * The network wire shapes as the client reads them (LXD 5.0.2's Network, NetworkLease,
 * NetworkState, NetworkForward*; the storage ones are in storage-types.ts). They are kept
 * apart from the daemon's own (src/api/network.ts) on purpose: the client talks to any LXD-API server, so lists Go leaves
 * nil arrive as null and fields a real LXD omits are optional here, where the daemon's types
 * say exactly what lodged sends.
 */

export interface NetworkPut {
  description?: string;
  config?: Record<string, string>;
}

export interface NetworksPost extends NetworkPut {
  name: string;
  /** "bridge" (the default when absent). */
  type?: string;
}

/** GET /1.0/networks/<name>. Unmanaged host interfaces are listed too, with managed: false. */
export interface Network {
  name: string;
  description: string;
  type: string;
  managed: boolean;
  status: string;
  config: Record<string, string>;
  used_by: string[] | null;
  locations?: string[] | null;
}

export interface NetworkLease {
  hostname: string;
  hwaddr: string;
  address: string;
  /** "dynamic", "static" (and in LXD "gateway", "uplink"). */
  type: string;
  location?: string;
}

export interface NetworkStateAddress {
  family: string;
  address: string;
  netmask: string;
  scope: string;
}

export interface NetworkStateCounters {
  bytes_received: number;
  bytes_sent: number;
  packets_received: number;
  packets_sent: number;
}

export interface NetworkStateBridge {
  id: string;
  stp: boolean;
  forward_delay: number;
  vlan_default: number;
  vlan_filtering: boolean;
  upper_devices: string[] | null;
}

/** GET /1.0/networks/<name>/state. */
export interface NetworkState {
  addresses: NetworkStateAddress[] | null;
  counters: NetworkStateCounters | null;
  hwaddr: string;
  mtu: number;
  state: string;
  type: string;
  bridge?: NetworkStateBridge | null;
  bond?: unknown;
  vlan?: { lower_device: string; vid: number } | null;
  ovn?: unknown;
}

export interface NetworkForwardPort {
  description?: string;
  protocol: string;
  listen_port: string;
  target_address: string;
  target_port?: string;
}

export interface NetworkForwardPut {
  description?: string;
  config?: Record<string, string>;
  ports?: NetworkForwardPort[];
}

export interface NetworkForwardsPost extends NetworkForwardPut {
  listen_address: string;
}

/** GET /1.0/networks/<name>/forwards/<listen_address>. */
export interface NetworkForward {
  listen_address: string;
  description: string;
  config: Record<string, string>;
  ports: NetworkForwardPort[] | null;
  location?: string;
}
