/**
 * What a bridge network is called on the host, and where its files are: everything follows
 * from the network's name, so it is found again after a daemon or host restart.
 */
import path from "node:path";

/**
 * Names the driver will put into an interface name, an nftables identifier and a path. The
 * service validates names too; this is the driver's own cheap check, stricter on purpose:
 * nft 1.0.6 takes no quoted table names, and its identifiers are letters, digits, "-", "_", ".".
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export function assertNetworkName(name: string): void {
  if (!NAME.test(name)) {
    throw new Error(`Invalid network name "${name}" for a bridge: 1 to 15 letters, digits, "-", "_" or ".", not starting with a symbol`);
  }
}

/** The network's nftables table, in family inet. */
export function tableName(name: string): string {
  return `lodge-${name}`;
}

/** The files of one network's dnsmasq and of the driver's own record. */
export interface NetworkFiles {
  dir: string;
  conf: string;
  pid: string;
  leases: string;
  hosts: string;
  /** The ruleset last loaded into nftables, to tell whether the table needs loading again. */
  nft: string;
  /** The settings last applied, so updateForwards can rebuild the table alone. */
  applied: string;
}

export function networkFiles(runDir: string, name: string): NetworkFiles {
  const dir = path.join(runDir, name);
  return {
    dir,
    conf: path.join(dir, "dnsmasq.conf"),
    pid: path.join(dir, "dnsmasq.pid"),
    leases: path.join(dir, "dnsmasq.leases"),
    hosts: path.join(dir, "dnsmasq.hosts"),
    nft: path.join(dir, "nftables.conf"),
    applied: path.join(dir, "network.json"),
  };
}
