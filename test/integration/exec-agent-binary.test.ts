/**
 * The host binaries Lodge runs inside a container's pid namespace — the exec agent
 * (native/execd) and the launcher that starts it (native/attach) — cannot be rewritten from
 * there through /proc/PID/exe (CVE-2019-5736 in runc): they run from sealed memfd copies.
 *
 * The attack as root of a privileged container does it: the agent is running, so writing
 * through its exe is refused (ETXTBSY) for now; but a descriptor opened on it stays, and once
 * nothing executes the file any more (the attacker kills the agent), writing through that
 * descriptor reaches whatever file the agent was run from. On the host binary that is every
 * later exec of every container run as the attacker's code.
 *
 * Each test runs the agent and launcher from private copies (LODGE_EXECD, LODGE_ATTACH): an
 * attack that succeeds (on a build without the fix) spoils those, not dist/, and no agent of
 * another test keeps them busy.
 */
import test, { after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativePath } from "../../src/sys/native.js";
import { agentsOf, container, sh } from "../helpers/driver-container.js";

const work = await mkdtemp(join(tmpdir(), "lodge-sealed-"));
after(() => rm(work, { recursive: true, force: true }));
let copies = 0;

/** Fresh copies of the agent and its launcher for this test, run instead of dist/'s. */
async function privateBinaries(t: TestContext): Promise<{ execd: string; attach: string }> {
  const dir = join(work, String(++copies));
  await mkdir(dir);
  const execd = join(dir, "lodge-execd");
  const attach = join(dir, "lodge-attach");
  await copyFile(nativePath("lodge-execd"), execd);
  await copyFile(nativePath("lodge-attach"), attach);
  const saved = { LODGE_EXECD: process.env.LODGE_EXECD, LODGE_ATTACH: process.env.LODGE_ATTACH };
  process.env.LODGE_EXECD = execd;
  process.env.LODGE_ATTACH = attach;
  t.after(() => {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  });
  return { execd, attach };
}

const sha256 = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * Run detached from the exec (it kills the agent that runs it): keep a descriptor on the
 * agent's exe, try to write through the exe now, kill the agent, wait until it is gone, write
 * through the kept descriptor. Each outcome is a line of /attack.out.
 */
const ATTACK = `
agent=$PPID
(
  exec 5</proc/$agent/exe || { echo "open: refused"; echo done; exit 0; }
  if printf x 2>/dev/null >>/proc/$agent/exe; then echo "while running: written"; else echo "while running: refused"; fi
  kill -9 $agent
  i=0
  while grep -q lodge-execd /proc/$agent/comm 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
  if printf pwned 2>/tmp/e1 >/proc/self/fd/5; then echo "after exit: written"; else echo "after exit: refused: $(cat /tmp/e1)"; fi
  if printf pwned 2>/tmp/e2 >>/proc/self/fd/5; then echo "append after exit: written"; else echo "append after exit: refused: $(cat /tmp/e2)"; fi
  echo done
) >/attack.out 2>&1 </dev/null &
`;

for (const privileged of [true, false])
  test(`root of ${privileged ? "a privileged" : "an unprivileged"} container cannot rewrite the exec agent's host binary through /proc/PID/exe`, async (t) => {
    const { execd } = await privateBinaries(t);
    const before = await sha256(execd);
    const c = await container(t, { privileged });
    assert.equal((await sh(c, "true")).code, 0);
    assert.equal(await c.driver.execAgentVia(c.name), "lodge-attach", "the agent was started natively");
    const { pid: init } = await c.driver.state(c.name);
    const [agent] = await agentsOf(init);
    assert.ok(agent, "an agent runs");
    const exe = await readlink(`/proc/${agent}/exe`);

    await sh(c, ATTACK);
    let out = "";
    for (let i = 0; i < 200 && !out.includes("done"); i++) {
      await sleep(50);
      out = (await sh(c, "cat /attack.out 2>/dev/null")).stdout;
    }
    assert.match(out, /done/, `the attack ran to its end: ${out}`);
    assert.doesNotMatch(out, /written/, `the attack wrote through the agent's exe:\n${out}`);
    assert.equal(await sha256(execd), before, "the host binary is unchanged");
    // The next exec (a new agent: the old one was killed) runs the real agent.
    assert.equal((await sh(c, "echo still works")).stdout, "still works\n");
    const [next] = await agentsOf(init);
    assert.ok(next && next !== agent, "a new agent serves the exec");
    assert.match(exe, /^\/memfd:/, "the agent runs from a memfd, not from a file on the host");
  });

/**
 * The cgroup (v2) that lxc-attach and lodge-attach put attached processes in, `.lxc` below the
 * container's: freezing it stops a launcher as it joins, and nothing else of the container (the
 * launcher reads init's seccomp filter first, so init must run).
 */
async function attachCgroupOf(init: number): Promise<string> {
  const v2 = (await readFile(`/proc/${init}/cgroup`, "utf8")).split("\n").find((l) => l.startsWith("0::"))!;
  const mount = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").find((l) => / - cgroup2 /.test(l))!.split(" ")[4]!;
  return join(mount, v2.slice(3), ".lxc");
}

test("the launcher that enters the container (lodge-attach) runs from a sealed copy too", async (t) => {
  const { attach } = await privateBinaries(t);
  const before = await sha256(attach);
  const c = await container(t, { privileged: true });
  assert.equal((await sh(c, "true")).code, 0);
  const { pid: init } = await c.driver.state(c.name);
  for (const agent of await agentsOf(init)) process.kill(agent, "SIGKILL");
  for (let i = 0; i < 100 && (await agentsOf(init)).length; i++) await sleep(20);
  // With the cgroup of attached processes frozen, the next agent's launcher stops as soon as it
  // joins it, in the middle of entering the container: there it is caught.
  const leaf = await attachCgroupOf(init);
  await writeFile(join(leaf, "cgroup.freeze"), "1");
  let thawed = false;
  const thaw = async () => {
    if (!thawed) await writeFile(join(leaf, "cgroup.freeze"), "0");
    thawed = true;
  };
  t.after(thaw);
  const exec = sh(c, "echo after");
  let launcher: number | undefined;
  for (let i = 0; i < 250 && !launcher; i++) {
    for (const p of (await readFile(join(leaf, "cgroup.procs"), "utf8").catch(() => "")).split("\n").filter(Boolean))
      if ((await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "")).includes("--payload")) launcher = Number(p);
    if (!launcher) await sleep(10);
  }
  assert.ok(launcher, "the launcher was caught entering the container");
  const exe = await readlink(`/proc/${launcher}/exe`);
  const held = openSync(`/proc/${launcher}/exe`, "r");
  t.after(() => closeSync(held));
  await thaw();
  assert.equal((await exec).stdout, "after\n");
  for (let i = 0; i < 100; i++) {
    if (!(await readFile(`/proc/${launcher}/cmdline`, "utf8").catch(() => "")).includes("--payload")) break;
    await sleep(20);
  }
  // What root of a privileged container can do with that exe once nothing runs it.
  let wrote = false;
  try {
    const w = openSync(`/proc/self/fd/${held}`, "r+");
    try {
      writeSync(w, "pwned");
      wrote = true;
    } finally {
      closeSync(w);
    }
  } catch (e) {
    assert.ok(["EPERM", "EACCES", "ETXTBSY"].includes((e as NodeJS.ErrnoException).code!), String(e));
  }
  assert.equal(wrote, false, `the launcher's exe (${exe}) could be written`);
  assert.match(exe, /^\/memfd:/, "the launcher runs from a memfd, not from a file on the host");
  assert.equal(await sha256(attach), before, "the host binary is unchanged");
});
