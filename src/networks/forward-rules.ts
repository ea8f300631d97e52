/**
 * Network forwards as the API carries them (listen address, ports as "80,8000-8010") checked
 * and turned into the driver's rules. Pure.
 */
import { badRequest } from "../api/errors.js";
import type { NetworkForwardPort } from "../api/network.js";
import type { ForwardRule } from "./driver.js";
import { contains, familyOf, parseInterfaceAddress, toBigInt } from "./ip.js";
import type { ForwardPortRecord, ForwardRecord } from "./record.js";

/** "80,8000-8010" → how many ports it names; throws on a malformed list. */
export function portCount(text: string, what: string): number {
  let n = 0;
  for (const part of text.split(",")) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    const a = m ? Number(m[1]) : NaN;
    const b = m?.[2] ? Number(m[2]) : a;
    if (!m || a < 1 || b > 65535 || b < a) throw badRequest(`Invalid ${what} "${text}": use ports and ranges such as 80,8000-8010 (1-65535)`);
    n += b - a + 1;
  }
  return n;
}

/** Checks one port mapping of a forward on a network whose subnets are `cidrs`. */
export function checkForwardPort(raw: Partial<NetworkForwardPort>, cidrs: readonly string[]): ForwardPortRecord {
  if (!raw || typeof raw !== "object") throw badRequest("Each forward port must be an object");
  const protocol = raw.protocol ?? "";
  if (protocol !== "tcp" && protocol !== "udp") throw badRequest(`Invalid forward port protocol "${protocol}": use tcp or udp`);
  const listen = String(raw.listen_port ?? "");
  const n = portCount(listen, "listen_port");
  const target = String(raw.target_port ?? "");
  if (target && portCount(target, "target_port") !== n) throw badRequest(`target_port "${target}" must name as many ports as listen_port "${listen}"`);
  const address = String(raw.target_address ?? "");
  checkTarget(address, cidrs);
  return { description: String(raw.description ?? ""), protocol, listen_port: listen, target_address: address, target_port: target };
}

/** A target must be an address inside one of the network's subnets. */
export function checkTarget(address: string, cidrs: readonly string[]): void {
  const family = familyOf(address);
  if (!family) throw badRequest(`Invalid forward target address "${address}"`);
  const inside = cidrs.some((c) => {
    const net = parseInterfaceAddress(c);
    return contains(net.prefix, toBigInt(address), family) && toBigInt(address) !== net.value;
  });
  if (!inside) throw badRequest(`Forward target address ${address} is not inside the network's subnet (${cidrs.join(", ") || "none"})`);
}

export function checkListenAddress(address: unknown): string {
  if (typeof address !== "string" || !familyOf(address)) throw badRequest(`Invalid listen_address ${JSON.stringify(address)}: give one IPv4 or IPv6 address`);
  if (toBigInt(address) === 0n) throw badRequest(`Invalid listen_address "${address}": a wildcard address cannot be forwarded`);
  return address;
}

export function forwardRules(records: readonly ForwardRecord[]): ForwardRule[] {
  return records.map((f) => ({
    listenAddress: f.listen_address,
    defaultTarget: f.config.target_address || undefined,
    ports: f.ports.map((p) => ({ protocol: p.protocol, listenPorts: p.listen_port, targetAddress: p.target_address, targetPorts: p.target_port || undefined })),
  }));
}
