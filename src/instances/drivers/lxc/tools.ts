/**
 * What the liblxc driver finds on the host once: liblxc's tools with the environment they run
 * with, and the host facts its generated config depends on.
 *
 * Ids: liblxc runs newuidmap/newgidmap (through `sh -c`, two processes each) whenever those
 * helpers are on PATH, even as root. The tools always run with a PATH without the helpers'
 * directories, so liblxc, running as root, writes the map directly: the same map, ~10 ms
 * less per start, and no dependence on root's /etc/subuid entries. The map itself was
 * already checked against root's ranges when it was allocated (sys/idmap.ts).
 */
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { cgroupLayout } from "../../../sys/cgroup.js";
import { which } from "../../../sys/exec.js";
import { InstanceDriverError } from "../../driver.js";
import type { LxcHostFacts } from "./config.js";
import { withoutShadowHelpers } from "./host-checks.js";

export interface LxcTools {
  start: string;
  stop: string;
  attach: string;
  script?: string;
  stty?: string;
  env: NodeJS.ProcessEnv;
}

const TOOL_NAMES = ["lxc-start", "lxc-stop", "lxc-attach"] as const;

/** Tool paths and the environment they run with (see the module comment on ids). */
export async function findLxcTools(): Promise<LxcTools> {
  const [found, script, stty] = await Promise.all([Promise.all(TOOL_NAMES.map((t) => which(t))), which("script"), which("stty")]);
  const missing = TOOL_NAMES.filter((_, i) => !found[i]);
  if (missing.length) throw new InstanceDriverError(`liblxc's tools are not installed (missing ${missing.join(", ")}); install the lxc package`);
  const PATH = await withoutShadowHelpers(process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin");
  const env: NodeJS.ProcessEnv = { PATH, LANG: "C.UTF-8" };
  return { start: found[0]!, stop: found[1]!, attach: found[2]!, script, stty, env };
}

/** The cgroup layout, swap accounting and AppArmor, as the generated config needs them. */
export async function probeLxcHostFacts(): Promise<LxcHostFacts> {
  const cgroup = await cgroupLayout();
  const memDir = cgroup.v1.memory;
  const [memsw, apparmor] = await Promise.all([
    memDir ? access(path.join(memDir, "memory.memsw.limit_in_bytes")).then(() => true, () => false) : false,
    readFile("/sys/module/apparmor/parameters/enabled", "utf8").then((t) => t.trim() === "Y", () => false),
  ]);
  return { cgroup, memsw, apparmor };
}
