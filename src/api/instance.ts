/** Wire shapes of /1.0/instances (reference: Instance, InstancesPost, InstanceState, …). */

export type InstanceType = "container" | "virtual-machine";

export interface InstancePut {
  architecture: string;
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
  ephemeral: boolean;
  profiles: string[];
  stateful: boolean;
  description: string;
}

export interface Instance extends InstancePut {
  name: string;
  type: InstanceType;
  status: string;
  status_code: number;
  created_at: string;
  last_used_at: string;
  location: string;
  project: string;
  expanded_config: Record<string, string>;
  expanded_devices: Record<string, Record<string, string>>;
}

export interface InstanceFull extends Instance {
  state: InstanceState | null;
  snapshots: InstanceSnapshot[] | null;
  backups: unknown[] | null;
}

export interface InstanceSource {
  type: "image" | "none" | "copy" | "migration";
  alias?: string;
  fingerprint?: string;
  properties?: Record<string, string>;
  server?: string;
  protocol?: "lxd" | "simplestreams";
  secret?: string;
  certificate?: string;
  mode?: "pull" | "push" | "relay";
  source?: string;
  project?: string;
  /** copy: leave the source's snapshots behind. */
  instance_only?: boolean;
  container_only?: boolean;
  /** copy: bring an existing target in line with the source. */
  refresh?: boolean;
  live?: boolean;
}

export interface InstancesPost extends Partial<InstancePut> {
  name: string;
  type?: InstanceType;
  source: InstanceSource;
  /** Accepted and ignored, as the cloud-style sizes mean nothing to Lodge. */
  instance_type?: string;
  start?: boolean;
}

export interface InstancePost {
  name?: string;
  migration?: boolean;
  live?: boolean;
  pool?: string;
  project?: string;
}

export type StateAction = "start" | "stop" | "restart" | "freeze" | "unfreeze";

export interface InstanceStatePut {
  action: StateAction;
  timeout?: number;
  force?: boolean;
  stateful?: boolean;
}

export interface InstanceStateNetworkAddress {
  family: "inet" | "inet6";
  address: string;
  netmask: string;
  scope: string;
}

export interface InstanceStateNetworkCounters {
  bytes_received: number;
  bytes_sent: number;
  packets_received: number;
  packets_sent: number;
  errors_received: number;
  errors_sent: number;
  packets_dropped_inbound: number;
  packets_dropped_outbound: number;
}

export interface InstanceStateNetwork {
  addresses: InstanceStateNetworkAddress[];
  counters: InstanceStateNetworkCounters;
  hwaddr: string;
  host_name: string;
  mtu: number;
  state: "up" | "down";
  type: string;
}

export interface InstanceState {
  status: string;
  status_code: number;
  pid: number;
  processes: number;
  cpu: { usage: number };
  memory: { usage: number; usage_peak: number; swap_usage: number; swap_usage_peak: number };
  disk: Record<string, { usage: number }>;
  network: Record<string, InstanceStateNetwork> | null;
}

export interface InstanceExecPost {
  command: string[];
  environment?: Record<string, string>;
  "wait-for-websocket"?: boolean;
  "record-output"?: boolean;
  interactive?: boolean;
  width?: number;
  height?: number;
  user?: number;
  group?: number;
  cwd?: string;
}

export interface InstanceConsolePost {
  type?: "console" | "vga";
  width?: number;
  height?: number;
}

/** GET /1.0/instances/<n>/snapshots/<s> (reference: InstanceSnapshot). */
export interface InstanceSnapshot {
  name: string;
  architecture: string;
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
  ephemeral: boolean;
  profiles: string[];
  stateful: boolean;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  expanded_config: Record<string, string>;
  expanded_devices: Record<string, Record<string, string>>;
  /** Bytes used, or -1 when the pool cannot tell cheaply (as LXD). */
  size: number;
}

export interface InstanceSnapshotsPost {
  name?: string;
  stateful?: boolean;
  expires_at?: string;
}

export interface InstanceSnapshotPost {
  name?: string;
  migration?: boolean;
  live?: boolean;
}
