/**
 * The exec agents of a driver's containers (one per running container, see exec-agent.ts):
 * started on first use (or right after a start), found again by name, dropped with the
 * container. A failed start is not remembered: the next exec tries again. Also tracks the
 * lxc-attach that starts each agent until it ends, for the clean-up after a container's end.
 */
import { nativeCalls, nativePath } from "../../../sys/native.js";
import { ExecAgent, type AgentTarget } from "./exec-agent.js";

export class ExecAgents {
  private readonly agents = new Map<string, Promise<ExecAgent | null>>();
  /** lxc-attach runs that started an agent and have not ended yet, by container. */
  private readonly attaching = new Map<string, Promise<void>>();

  /** How to reach a container with lxc-attach (the driver's tools, resolved lazily). */
  constructor(private readonly target: (name: string) => Promise<Omit<AgentTarget, "binary">>) {}

  /** The container's agent; null when the native parts were not built. */
  get(name: string): Promise<ExecAgent | null> {
    const known = this.agents.get(name);
    if (known) return known;
    const native = nativeCalls();
    if (!native) return Promise.resolve(null);
    const binary = nativePath("lodge-execd", "LODGE_EXECD");
    const starting = (async () => {
      const agent = ExecAgent.start(native, { ...(await this.target(name)), binary });
      const attach = agent.attachExited;
      this.attaching.set(name, attach);
      void attach.then(() => {
        if (this.attaching.get(name) === attach) this.attaching.delete(name);
      });
      agent.whenClosed(() => {
        if (this.agents.get(name) === starting) this.agents.delete(name);
      });
      await agent.ready;
      return agent;
    })();
    this.agents.set(name, starting);
    starting.catch(() => {
      if (this.agents.get(name) === starting) this.agents.delete(name);
    });
    return starting;
  }

  /** Ends the container's agent (if any); the next exec starts another. */
  drop(name: string): void {
    const known = this.agents.get(name);
    this.agents.delete(name);
    void known?.then((a) => a?.close(), () => undefined);
  }

  /** Resolves once no lxc-attach of an agent of this container runs (at most after ms). */
  async attachesDone(name: string, ms = 5000): Promise<void> {
    const attach = this.attaching.get(name);
    if (attach) await Promise.race([attach, new Promise((r) => setTimeout(r, ms))]);
  }
}
