/** A network as GET /1.0/networks/<name> returns it (LXD 5.0's shape). */
export interface Network {
  name: string;
  description: string;
  type: string;
  managed: boolean;
  status: string;
  config: Record<string, string>;
  used_by: string[];
  locations: string[];
}

/** PUT /1.0/networks/<name> (PATCH: any subset). */
export interface NetworkPut {
  description?: string;
  config?: Record<string, string>;
}

/** POST /1.0/networks. */
export interface NetworksPost extends NetworkPut {
  name: string;
  type?: string;
}

export interface NetworkLease {
  hostname: string;
  hwaddr: string;
  address: string;
  type: string;
  location: string;
}

export interface NetworkForwardPort {
  description: string;
  protocol: string;
  listen_port: string;
  target_address: string;
  target_port: string;
}

export interface NetworkForward {
  listen_address: string;
  description: string;
  config: Record<string, string>;
  ports: NetworkForwardPort[];
  location: string;
}

/** POST /1.0/networks/<n>/forwards; PUT takes the same without listen_address. */
export interface NetworkForwardsPost {
  listen_address: string;
  description?: string;
  config?: Record<string, string>;
  ports?: Partial<NetworkForwardPort>[];
}
