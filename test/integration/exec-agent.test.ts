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
import { spawn } from "node:child_process";
import { nativePath } from "../../src/sys/native.js";
import { agentsOf, container, execFileP, leftovers, lxcpath, sh } from "../helpers/driver-container.js";

/** Host pids of the processes named `comm` in the pid namespace of a container's init. */
async function processesOf(init: number, comm: string): Promise<number[]> {
  const ns = await readlink(`/proc/${init}/ns/pid`);
  const out: number[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    if ((await readFile(`/proc/${p}/comm`, "utf8").catch(() => "")).trim() !== comm) continue;
    if ((await readlink(`/proc/${p}/ns/pid`).catch(() => "")) === ns) out.push(Number(p));
  }
  return out;
}

/** Everything the kernel says about a process's confinement, seen from the host. */
async function confinementOf(pid: number): Promise<Record<string, string>> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const out: Record<string, string> = {};
  for (const line of status.split("\n")) {
    const m = /^(Uid|Gid|Groups|Seccomp|Seccomp_filters|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  out.cgroup = await readFile(`/proc/${pid}/cgroup`, "utf8");
  for (const n of ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]) out[`ns ${n}`] = await readlink(`/proc/${pid}/ns/${n}`);
  out.lsm = await readFile(`/proc/${pid}/attr/current`, "utf8").catch((e: NodeJS.ErrnoException) => `(${e.code})`);
  out.root = await readlink(`/proc/${pid}/root`);
  // The seccomp program itself, instruction by instruction (PTRACE_SECCOMP_GET_FILTER).
  out.seccompProgram = (await execFileP(nativePath("lodge-attach"), ["--seccomp-filter", String(pid)])).stdout;
  return out;
}

for (const privileged of [false, true])
  test(`an agent started by lodge-attach is confined exactly as what lxc-attach starts${privileged ? " (privileged container)" : ""}`, async (t) => {
    const c = await container(t, { privileged });
    assert.equal((await sh(c, "true")).code, 0);
    assert.equal(await c.driver.execAgentVia(c.name), "lodge-attach", "the agent was started natively, not by the lxc-attach fallback");
    const { pid: init } = await c.driver.state(c.name);
    const [agent] = await agentsOf(init);
    assert.ok(agent, "an agent runs");
    // A process lxc-attach starts in the same container, side by side.
    const attached = spawn("lxc-attach", ["-n", c.name, "-P", lxcpath, "--clear-env", "--", "sleep", "30"], { stdio: "ignore" });
    t.after(() => attached.kill("SIGKILL"));
    let sleeper: number | undefined;
    for (let i = 0; i < 200 && !sleeper; i++) {
      [sleeper] = await processesOf(init, "sleep");
      if (!sleeper) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(sleeper, "lxc-attach started its process");
    const [ours, theirs] = await Promise.all([confinementOf(agent), confinementOf(sleeper)]);
    assert.deepEqual(ours, theirs);
    assert.equal(ours.Seccomp, "2");
    assert.ok(ours.seccompProgram!.split("\n").length > 5, "a real seccomp program was compared");
    assert.equal(ours["ns user"] !== (await readlink("/proc/self/ns/user")), !privileged, "the user namespace is the container's own");
  });

for (const [why, helper] of [["refuses", "/bin/false"], ["is missing", "/nonexistent/lodge-attach"]])
test(`where lodge-attach ${why}, the agent comes from lxc-attach and exec works the same`, async (t) => {
  const c = await container(t, { driver: { nativeAttach: true } });
  const saved = process.env.LODGE_ATTACH;
  process.env.LODGE_ATTACH = helper;
  t.after(() => {
    if (saved === undefined) delete process.env.LODGE_ATTACH;
    else process.env.LODGE_ATTACH = saved;
  });
  assert.equal((await sh(c, "echo fallback")).stdout, "fallback\n");
  assert.equal(await c.driver.execAgentVia(c.name), "lxc-attach");
});

const CONFINEMENT =
  "grep -E '^(Uid|Gid|Groups|Seccomp|Seccomp_filters|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status; " +
  "cat /proc/self/cgroup; for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; done";

test("one agent per run serves every exec, confined exactly as an lxc-attach command", async (t) => {
  const c = await container(t);
  const first = await sh(c, "cat /proc/$PPID/comm; echo $PPID");
  const second = await sh(c, "cat /proc/$PPID/comm; echo $PPID");
  assert.equal(first.stdout.split("\n")[0], "lodge-execd", "the command is the agent's child");
  assert.equal(first.stdout, second.stdout, "the same agent serves both");
  assert.equal(await c.driver.execAgentVia(c.name), "lodge-attach");
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
