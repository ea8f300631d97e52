/**
 * The network driver contract. The network service owns the records, validation, `auto`
 * subnets and who uses what; a driver turns one network's resolved settings into host state
 * (a bridge, its addresses, one dnsmasq, one nftables table) and reads that state back. A new
 * network type (macvlan, ovn, a cluster fan) is one new driver behind this interface.
 *
 * Everything a driver makes is named after the network, so it can be found and removed again
 * after a daemon or host restart with nothing but the network's name: the bridge is the
 * network's name, the nftables table is `lodge-<name>` in family inet, and dnsmasq's files live
 * in `<runDir>/<name>/`.
 */

/** One IPv4 or IPv6 side of a bridge network, resolved (no `auto` left). */
export interface AddressFamilySettings {
  /** The bridge's own address with prefix, e.g. "10.83.4.1/24" or "fd42:1:2:3::1/64". */
  cidr: string;
  /** Masquerade traffic from the subnet leaving through any other interface. */
  nat: boolean;
  /** Serve DHCP (IPv4) or stateful DHCPv6 (IPv6) to the subnet. */
  dhcp: boolean;
  /** DHCP ranges as [first, last] addresses; empty means the whole subnet but the bridge's address. */
  dhcpRanges: [string, string][];
  /** IPv6 only: send router advertisements (SLAAC when `dhcp` is off, with stateful DHCPv6 when on). */
  routerAdvertisements?: boolean;
}

/** A fixed DHCP host: an instance NIC's MAC with its name and optional static addresses. */
export interface StaticHost {
  hwaddr: string;
  /** DNS name inside the network's domain (the instance name). */
  name: string;
  ipv4?: string;
  ipv6?: string;
}

/** A port mapping of a network forward: listen port(s) on the listen address to a target. */
export interface ForwardPortRule {
  protocol: "tcp" | "udp";
  /** Ports on the listen address: single ports and ranges ("80", "8000-8010"). */
  listenPorts: string;
  targetAddress: string;
  /** Target ports, same count as listenPorts; absent means the same ports. */
  targetPorts?: string;
}

/** A network forward: traffic to `listenAddress` goes to instance addresses on the network. */
export interface ForwardRule {
  listenAddress: string;
  /** Where traffic to ports not named in `ports` goes; absent means nowhere. */
  defaultTarget?: string;
  ports: ForwardPortRule[];
}

/** Everything the driver needs to bring one network to the wanted state on the host. */
export interface ResolvedNetwork {
  /** The network's name; also the bridge's interface name (at most 15 bytes). */
  name: string;
  mtu?: number;
  hwaddr?: string;
  ipv4?: AddressFamilySettings;
  ipv6?: AddressFamilySettings;
  /** DNS domain served by dnsmasq for the network's hosts ("lodge" by default). */
  dnsDomain: string;
  /** managed: names from the hosts list; dynamic: also names clients give in DHCP; none: no DNS. */
  dnsMode: "managed" | "dynamic" | "none";
  /** Extra dnsmasq configuration lines (`raw.dnsmasq`). */
  rawDnsmasq?: string;
  hosts: StaticHost[];
  forwards: ForwardRule[];
}

export interface Lease {
  hostname: string;
  hwaddr: string;
  address: string;
  /** "dynamic" from dnsmasq's lease file, "static" from the hosts list. */
  type: "dynamic" | "static";
  /** Seconds since the epoch when the lease ends (dynamic leases). */
  expires?: number;
}

/** As LXD's /1.0/networks/<n>/state. */
export interface NetworkState {
  addresses: { family: "inet" | "inet6"; address: string; netmask: string; scope: string }[];
  counters: { bytes_received: number; bytes_sent: number; packets_received: number; packets_sent: number };
  hwaddr: string;
  mtu: number;
  state: "up" | "down";
  type: string;
  /** Bridge details when the interface is a bridge; null otherwise (bond, vlan and ovn: always null here). */
  bridge: { id: string; stp: boolean; forward_delay: number; vlan_default: number; vlan_filtering: boolean; upper_devices: string[] } | null;
  bond: null;
  vlan: null;
  ovn: null;
}

export interface NetworkDriver {
  /** The LXD network type this driver serves ("bridge"). */
  readonly type: string;
  /**
   * Makes the host match `net`: creates what is missing (bridge, addresses, dnsmasq, nft
   * table), changes what differs, removes what is no longer wanted (an address family turned
   * off). Idempotent: run against an already matching host it changes nothing and restarts no
   * dnsmasq. Used at create, at every config change and at daemon start.
   */
  apply(net: ResolvedNetwork, signal?: AbortSignal): Promise<void>;
  /** Removes everything the network owns on the host; quiet for parts already gone. */
  remove(name: string): Promise<void>;
  /** Renames the host state (bridge, table, dnsmasq files) from one network name to another. */
  rename(from: string, to: ResolvedNetwork): Promise<void>;
  /** Rewrites the static hosts and tells dnsmasq, without restarting it. */
  updateHosts(name: string, hosts: StaticHost[]): Promise<void>;
  /** Replaces the network's forward rules. */
  updateForwards(name: string, forwards: ForwardRule[]): Promise<void>;
  /** Dynamic and static leases of the network. */
  leases(name: string): Promise<Lease[]>;
  state(name: string): Promise<NetworkState | undefined>;
  /**
   * Whether the network's dnsmasq is alive (true also when the network needs no dnsmasq). The
   * service polls this and calls apply() when it is not, so a killed dnsmasq comes back.
   */
  healthy(name: string): Promise<boolean>;
}
