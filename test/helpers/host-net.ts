/**
 * Host network pieces for tests: a subnet no route of the host uses, and a client in a network
 * namespace of its own (a veth whose host end is on a bridge), removed in t.after by name.
 */
import type { TestContext } from "node:test";
import { randomBytes, randomInt } from "node:crypto";
import { runCommand } from "./daemon.js";

const ip = (args: string[]) => runCommand("ip", args);

/** A fresh 10.x.y.0/24 that no route or address of the host (any table) overlaps: "10.x.y". */
export async function freeSubnet(): Promise<string> {
  const routes = JSON.parse((await ip(["-j", "-4", "route", "show", "table", "all"])).stdout) as { dst: string }[];
  const addrs = JSON.parse((await ip(["-j", "-4", "addr"])).stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
  const taken = [
    ...routes.filter((r) => r.dst !== "default").map((r) => (r.dst.includes("/") ? r.dst : `${r.dst}/32`)),
    ...addrs.flatMap((a) => a.addr_info.map((i) => `${i.local}/${i.prefixlen}`)),
  ].map((cidr) => {
    const [a, len] = cidr.split("/");
    const n = a!.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(len));
    return { start: n - (n % size), size };
  });
  for (let i = 0; i < 200; i++) {
    const [x, y] = [randomInt(1, 255), randomInt(0, 255)];
    const start = 10 * 2 ** 24 + x * 2 ** 16 + y * 256;
    if (!taken.some((t) => start < t.start + t.size && t.start < start + 256)) return `10.${x}.${y}`;
  }
  throw new Error("no free 10.x.y.0/24 on this host");
}

/**
 * A random ULA /64 prefix (a ULA is random by definition), written as `ip` writes it: four
 * groups, none zero, without leading zeros ("fdc1:5e:2f0a:9b3"), so "<prefix>::1/64" and
 * "<prefix>:" compare as text.
 */
export function randomUlaPrefix(): string {
  const groups = [0xfd00 | randomInt(1, 256), ...[1, 2, 3].map(() => randomInt(1, 0x10000))];
  return groups.map((g) => g.toString(16)).join(":");
}

export const randomMac = () => `00:16:3e:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;

export interface NamespaceClient {
  ns: string;
  /** The interface inside the namespace. */
  iface: string;
  mac: string;
  /** Runs a command inside the namespace. */
  exec(args: string[], opts?: { allowFail?: boolean; timeoutMs?: number }): ReturnType<typeof runCommand>;
}

/** A network namespace with one veth, its host end enslaved to `bridge`; deleted in t.after. */
export async function namespaceClient(t: TestContext, bridge: string, mac = randomMac()): Promise<NamespaceClient> {
  const id = randomBytes(4).toString("hex");
  const ns = `lodge-test-${id}`;
  const host = `lv${id}`;
  t.after(async () => {
    await runCommand("ip", ["link", "del", host], { allowFail: true });
    await runCommand("ip", ["netns", "del", ns], { allowFail: true });
  });
  await ip(["netns", "add", ns]);
  await ip(["link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await ip(["link", "set", host, "master", bridge, "up"]);
  // As an instance NIC on a managed bridge must (LXD does the same): with br_netfilter loaded
  // (bridge-nf-call-iptables=1, as on these hosts) the answer to a connection that a forward
  // sent back to its own client is un-NATed at the bridge and must leave by the port it came in.
  await ip(["link", "set", host, "type", "bridge_slave", "hairpin", "on"]);
  const exec: NamespaceClient["exec"] = (args, opts) => runCommand("ip", ["netns", "exec", ns, ...args], opts);
  await exec(["ip", "link", "set", "lo", "up"]);
  await exec(["ip", "link", "set", "eth0", "address", mac, "up"]);
  return { ns, iface: "eth0", mac, exec };
}
