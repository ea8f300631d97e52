/**
 * The guest agents of running VMs, one connection each (agent-client.ts multiplexes every call
 * over it), made on first use and kept while the same QEMU runs. The agent client is its own
 * module, loaded when first needed.
 */
import { InstanceDriverError } from "../../driver.js";
import type { GuestAgent } from "./agent-api.js";

let clientModule: Promise<typeof import("./agent-client.js")> | undefined;

/** The client module, loaded when a VM's agent is first wanted (not on lodged's start path). */
function loadClient(): Promise<typeof import("./agent-client.js")> {
  return (clientModule ??= import("./agent-client.js").catch((e: Error) => {
    clientModule = undefined;
    throw new InstanceDriverError(`the guest agent client is not available: ${e.message}`);
  }));
}

interface Entry {
  pid: number;
  agent: Promise<GuestAgent>;
}

export class Agents {
  private readonly byName = new Map<string, Entry>();

  /** The agent of the QEMU `pid` behind `socket`. */
  get(name: string, pid: number, socket: string): Promise<GuestAgent> {
    const e = this.byName.get(name);
    if (e?.pid === pid) return e.agent;
    if (e) this.drop(name);
    const agent = loadClient().then((m) => m.connectAgent(socket));
    const entry = { pid, agent };
    this.byName.set(name, entry);
    agent.catch(() => this.byName.get(name) === entry && this.byName.delete(name));
    return agent;
  }

  /** The agent only if a connection was already made for this QEMU (for state: no new connection). */
  existing(name: string, pid: number): Promise<GuestAgent> | undefined {
    const e = this.byName.get(name);
    return e?.pid === pid ? e.agent : undefined;
  }

  drop(name: string): void {
    const e = this.byName.get(name);
    this.byName.delete(name);
    if (e) void e.agent.then((a) => a.close(), () => undefined);
  }

  closeAll(): void {
    for (const name of [...this.byName.keys()]) this.drop(name);
  }
}
