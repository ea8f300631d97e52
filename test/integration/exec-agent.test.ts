/**
 * The exec agent (native/execd, drivers/lxc/exec-agent.ts): one agent per container run
 * serves every exec, with exactly the confinement lxc-attach gives; an agent that stops
 * answering or dies costs neither the daemon's responsiveness nor the exec; nothing of it is
 * left once the container stops.
 */
import test from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, readlink } from "node:fs/promises";
import { LxcDriver } from "../../src/instances/drivers/lxc/driver.js";
import { container, leftovers, lxcpath, sh } from "../helpers/driver-container.js";

/** Host pids of the lodge-execd processes in the pid namespace of a container's init. */
async function agentsOf(init: number): Promise<number[]> {
  const ns = await readlink(`/proc/${init}/ns/pid`);
  const out: number[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    if (!stat.includes("(lodge-execd)") || / [ZX] /.test(stat.slice(stat.lastIndexOf(")")))) continue;
    if ( (await readlink(`/proc/${p}/ns/pid`).catch(() => "")) === ns) out.push(Number(p));
  }
  return out;
}

const CONFINEMENT =
  "grep -E '^(Uid|Gid|Groups|Seccomp|Seccomp_filters|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status; " +
  "cat /proc/self/cgroup; for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; done";

test("one agent per run serves every exec, confined exactly as an lxc-attach command", async (t) => {
  const c = await container(t);
  const first = await sh(c, "cat /proc/$PPID/comm; echo $PPID");
  const second = await sh(c, "cat /proc/$PPID/comm; echo $PPID");
  assert.equal(first.stdout.split("\n")[0], "lodge-execd", "the command is the agent's child");
  assert.equal(first.stdout, second.stdout, "the same agent serves both");
  const { pid: init } = await c.driver.state(c.name);
  assert.equal((await agentsOf(init)).length, 1);
  // The same command through lxc-attach (a driver without the agent), side by side.
  const viaAgent = await sh(c, CONFINEMENT);
  const plain = { ...c, driver: new LxcDriver({ lxcpath, execAgent: false }) };
  const viaAttach = await sh(plain, CONFINEMENT);
  assert.equal(viaAgent.code, 0);
  assert.equal(viaAgent.stdout, viaAttach.stdout);
  assert.match(viaAgent.stdout, /^Seccomp:\s+2$/m, "the container's seccomp filter applies");
});

test("an agent that is stopped or killed: the daemon stays responsive and exec still works", async (t) => {
  const c = await container(t);
  await sh(c, "true");
  const { pid: init } = await c.driver.state(c.name);
  const [agent] = await agentsOf(init);
  assert.ok(agent, "an agent runs");
  process.kill(agent, "SIGSTOP");
  t.after(() => {
    try {
      process.kill(agent, "SIGKILL");
    } catch {
      // gone
    }
  });
  const pending = sh(c, "echo still works");
  // Meanwhile the driver answers other calls: nothing waits on the stopped agent.
  const t0 = Date.now();
  assert.equal((await c.driver.status(c.name)).status, "Running");
  assert.ok(Date.now() - t0 < 2000, "status answered while the exec waits");
  const r = await pending;
  // The stopped agent is dropped; the command counts as not run (127) and the next exec gets a new agent.
  assert.equal(r.code, 127);
  assert.equal((await sh(c, "echo again")).stdout, "again\n");
  process.kill(agent, "SIGKILL");
  const gone = async (pid: number) => {
    for (let i = 0; i < 100 && (await agentsOf(init)).includes(pid); i++) await new Promise((r2) => setTimeout(r2, 50));
    assert.ok(!(await agentsOf(init)).includes(pid), `agent ${pid} is gone`);
  };
  await gone(agent);
  // Killed outright: the next exec starts another one.
  const [current] = await agentsOf(init);
  assert.ok(current && current !== agent, "the new agent runs");
  process.kill(current, "SIGKILL");
  await gone(current);
  assert.equal((await sh(c, "echo after kill")).stdout, "after kill\n");
  assert.equal((await agentsOf(init)).length, 1);
});

test("stopping the container leaves no agent, no lxc-attach and no cgroup behind", async (t) => {
  const c = await container(t);
  await sh(c, "true");
  await c.driver.stop(c.name, { force: true });
  assert.deepEqual((await leftovers(c.name)).filter((l) => !l.startsWith("dir ")), []);
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const cmd = (await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "")).replace(/\0/g, " ");
    assert.ok(!(cmd.includes("lxc-attach") && cmd.includes(c.name)), `left: ${cmd}`);
  }
});
