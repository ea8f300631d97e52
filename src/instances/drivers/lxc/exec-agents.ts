/**
 * The exec agents of a driver's containers (one per running container, see exec-agent.ts):
 * started on first use (or right after a start), found again by name, dropped with the
 * container. A failed start is not remembered: the next exec tries again. Also tracks the
 * launcher that starts each agent until it ends, for the clean-up after a container's end.
 *
 * Launches are tried in the order given: lodge-attach first (about a millisecond), then
 * lxc-attach when lodge-attach refused (it refuses rather than confine any less; see
 * native/attach) or its agent did not answer.
 */
import { nativeCalls, nativePath } from "../../../sys/native.js";
import { ExecAgent, type AgentLaunch } from "./exec-agent.js";

/** How long an agent started natively may take to answer before lxc-attach is tried instead. */
const NATIVE_READY_MS = 3000;

export class ExecAgents {
  private readonly agents = new Map<string, Promise<ExecAgent | null>>();
  /** Launchers that started an agent and have not ended yet, by container. */
  private readonly attaching = new Map<string, Promise<void>>();

  /** The ways to start a container's agent, best first (the driver's tools, resolved lazily). */
  constructor(private readonly launches: (name: string) => Promise<Omit<AgentLaunch, "binary">[]>) {}

  /** The container's agent; null when the native parts were not built. */
  get(name: string): Promise<ExecAgent | null> {
    const known = this.agents.get(name);
    if (known) return known;
    const native = nativeCalls();
    if (!native) return Promise.resolve(null);
    const binary = nativePath("lodge-execd", "LODGE_EXECD");
    const starting = (async () => {
      const launches = await this.launches(name);
      let failure: unknown = new Error("no way to start the exec agent");
      for (const [i, launch] of launches.entries()) {
        const last = i === launches.length - 1;
        let agent: ExecAgent;
        try {
          // Throws when the launcher cannot be spawned at all (say, a build without lodge-attach).
          agent = ExecAgent.start(native, { ...launch, binary }, last ? undefined : NATIVE_READY_MS);
        } catch (e) {
          failure = e;
          continue;
        }
        this.track(name, agent);
        try {
          await agent.ready;
        } catch (e) {
          failure = e;
          agent.close();
          continue;
        }
        agent.whenClosed(() => {
          if (this.agents.get(name) === starting) this.agents.delete(name);
        });
        return agent;
      }
      throw failure;
    })();
    this.agents.set(name, starting);
    starting.catch(() => {
      if (this.agents.get(name) === starting) this.agents.delete(name);
    });
    return starting;
  }

  private track(name: string, agent: ExecAgent): void {
    const attach = agent.attachExited;
    const before = this.attaching.get(name);
    const both = before ? Promise.all([before, attach]).then(() => undefined) : attach;
    this.attaching.set(name, both);
    void both.then(() => {
      if (this.attaching.get(name) === both) this.attaching.delete(name);
    });
  }

  /** Ends the container's agent (if any); the next exec starts another. */
  drop(name: string): void {
    const known = this.agents.get(name);
    this.agents.delete(name);
    void known?.then((a) => a?.close(), () => undefined);
  }

  /** Resolves once no launcher of an agent of this container runs (at most after ms). */
  async attachesDone(name: string, ms = 5000): Promise<void> {
    const attach = this.attaching.get(name);
    if (attach) await Promise.race([attach, new Promise((r) => setTimeout(r, ms))]);
  }
}
