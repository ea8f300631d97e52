/**
 * How a running container's exec agent is started, best first: lodge-attach (native/attach),
 * which confines exactly as lxc-attach does but without liblxc's per-call set-up, where it can
 * reproduce the attach; lxc-attach otherwise, and as the fallback when the first fails.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { nativePath } from "../../../sys/native.js";
import type { AgentLaunch } from "./exec-agent.js";

export type AgentLaunchSpec = Omit<AgentLaunch, "binary">;

/**
 * Config keys that make lxc-attach do more than lodge-attach reproduces (native/attach): a
 * container with any of them gets its agent through lxc-attach. Lodge writes none of them
 * today; this keeps it so when one is added.
 */
const ATTACH_AFFECTING = /^lxc\.(prlimit|no_new_privs|selinux|arch|personality|environment|init\.(uid|gid|groups)|seccomp\.(?!profile\b)|apparmor\.profile\s*=(?!\s*unconfined\s*$))/m;

export async function agentLaunches(o: {
  name: string;
  lxcpath: string;
  /** The container's directory (its liblxc config). */
  dir: string;
  tools: { attach: string; env: NodeJS.ProcessEnv };
  /** The host has AppArmor (lxc-attach would change the label). */
  apparmor: boolean;
  /** Host pid of the container's init, when it runs. */
  init?: number;
  /** lodge-attach allowed (the driver's option). */
  native: boolean;
}): Promise<AgentLaunchSpec[]> {
  const viaLxc: AgentLaunchSpec = { via: "lxc-attach", command: o.tools.attach, args: ["-n", o.name, "-P", o.lxcpath, "--clear-env", "--", "/proc/self/fd/3"], env: o.tools.env, sealed: false };
  if (!o.native || !o.init || o.apparmor) return [viaLxc];
  const config = await readFile(path.join(o.dir, "config"), "utf8").catch(() => undefined);
  if (config === undefined || ATTACH_AFFECTING.test(config)) return [viaLxc];
  const native: AgentLaunchSpec = { via: "lodge-attach", command: nativePath("lodge-attach", "LODGE_ATTACH"), args: ["--pid", String(o.init), "--payload", `lxc.payload.${o.name}`], env: {}, sealed: true };
  return [native, viaLxc];
}
