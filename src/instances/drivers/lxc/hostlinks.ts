/**
 * The host side of container interfaces: which host interface is the peer of a veth inside a
 * container, found from the host's /sys/class/net (file reads only).
 */
import { readdir } from "node:fs/promises";
import { readSmall } from "../../../sys/small-file.js";

interface HostTable {
  at: number;
  /** Linked host interfaces (iflink ≠ ifindex) by ifindex. */
  links: Promise<Map<number, { name: string; iflink: number }>>;
}

/**
 * The host's linked interfaces (veths above all) by ifindex, scanned once and shared by the
 * state reads of all instances; rescanned when a lookup misses and the scan is older than
 * `rescanAfterMs`, so a new veth is found at its first look.
 */
export class HostLinks {
  private table?: HostTable;

  constructor(
    private readonly dir = "/sys/class/net",
    private readonly rescanAfterMs = 50,
  ) {}

  /** The host interface with ifindex `peer` and iflink `own`, or "". */
  async hostName(peer: number, own: number): Promise<string> {
    for (const maxAge of [Infinity, this.rescanAfterMs]) {
      const t = this.current(maxAge);
      const hit = (await t.links).get(peer);
      // Still that interface (a name may have gone and come back with another index).
      if (hit?.iflink === own && Number(await readHost(`${this.dir}/${hit.name}/ifindex`)) === peer) return hit.name;
    }
    return "";
  }

  private current(maxAgeMs: number): HostTable {
    if (!this.table || Date.now() - this.table.at > maxAgeMs) this.table = { at: Date.now(), links: this.scan() };
    return this.table;
  }

  private async scan(): Promise<Map<number, { name: string; iflink: number }>> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const rows = await Promise.all(
      names.map(async (name) => {
        const [index, link] = await Promise.all([readHost(`${this.dir}/${name}/ifindex`), readHost(`${this.dir}/${name}/iflink`)]);
        return { name, ifindex: Number(index), iflink: Number(link) };
      }),
    );
    const map = new Map<number, { name: string; iflink: number }>();
    for (const r of rows) if (r.ifindex > 0 && r.iflink > 0 && r.ifindex !== r.iflink) map.set(r.ifindex, { name: r.name, iflink: r.iflink });
    return map;
  }
}

const readHost = (p: string) => readSmall(p).then((t) => t?.trim());

/** Shared by every container driver of the process: the host has one set of interfaces. */
export const hostLinks = new HostLinks();
