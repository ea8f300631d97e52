/**
 * What the store keeps for a managed network (networks/<project>/<name>) and for each of its
 * forwards (network-forwards/<project>/<network>/<listen address>). `phase` makes a create
 * crash-safe: a network still "creating" when the daemon starts is undone (its host state and
 * record removed), as instance records are.
 */
export interface NetworkRecord {
  name: string;
  project: string;
  type: "bridge";
  description: string;
  /** Stored resolved: `auto` addresses are replaced by what was picked, as LXD stores them. */
  config: Record<string, string>;
  phase: "creating" | "ready";
}

export interface ForwardPortRecord {
  description: string;
  protocol: "tcp" | "udp";
  listen_port: string;
  target_address: string;
  target_port: string;
}

export interface ForwardRecord {
  network: string;
  project: string;
  listen_address: string;
  description: string;
  config: Record<string, string>;
  ports: ForwardPortRecord[];
}

export const networkKey = (project: string, name: string) => `networks/${project}/${name}`;
export const networkPrefix = (project?: string) => (project ? `networks/${project}/` : "networks/");
export const forwardKey = (project: string, network: string, listen: string) => `network-forwards/${project}/${network}/${listen}`;
export const forwardPrefix = (project: string, network: string) => `network-forwards/${project}/${network}/`;

export function networkUrl(project: string, name: string): string {
  return `/1.0/networks/${encodeURIComponent(name)}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;
}
