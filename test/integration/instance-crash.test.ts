import test from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import type { Operation } from "../../src/api/operation.js";
import type { Event } from "../../src/api/event.js";

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

const names = async (d: TestDaemon) =>
  ((await d.client.get<string[]>("/1.0/instances")) ?? []).map((u) => u.split("/").pop()!.split("?")[0]!).sort();
const status = async (d: TestDaemon, n: string) => (await d.client.get<{ status: string }>(`/1.0/instances/${n}/state`)).status;
const monitors = (d: TestDaemon) =>
  execFileSync("ps", ["-eo", "args"]).toString().split("\n").filter((l) => l.includes(join(d.dir, "containers"))).length;

test("kill -9 of lodged while 5 containers run: after a restart all 5 are RUNNING and exec-able", async (t) => {
  const d = await daemonWithImage(t);
  const five = ["r1", "r2", "r3", "r4", "r5"];
  await Promise.all(five.map((n) => d.lxc(["launch", "bb", n])));
  const pidsBefore = await Promise.all(five.map(async (n) => (await d.client.get<{ pid: number }>(`/1.0/instances/${n}/state`)).pid));
  await d.kill9();
  await d.launch();
  for (const [i, n] of five.entries()) {
    assert.equal(await status(d, n), "Running", n);
    assert.equal((await d.client.get<{ pid: number }>(`/1.0/instances/${n}/state`)).pid, pidsBefore[i], `${n} is the same container`);
    assert.equal((await d.lxc(["exec", n, "--", "echo", n])).stdout, `${n}\n`);
  }
  // A container whose init dies is reported STOPPED, not RUNNING.
  process.kill(pidsBefore[0]!, "SIGKILL");
  for (let i = 0; i < 50 && (await status(d, "r1")) !== "Stopped"; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await status(d, "r1"), "Stopped");
  await d.lxc(["start", "r1"]);
  assert.equal((await d.lxc(["exec", "r1", "--", "echo", "back"])).stdout, "back\n");
  await Promise.all(five.map((n) => d.lxc(["delete", "--force", n])));
  assert.equal(monitors(d), 0);
});

test("kill -9 of lodged during 10 parallel launches: every instance is whole or absent", async (t) => {
  const d = await daemonWithImage(t);
  // Kill at a different moment in each round: while the first creates run, once the first
  // instance is created, once the first has started.
  const moments: [string, (e: Event) => boolean][] = [
    ["first create running", (e) => e.type === "operation" && (e.metadata as Operation).description === "Creating instance" && (e.metadata as Operation).status === "Running"],
    ["first instance created", (e) => e.type === "lifecycle" && (e.metadata as { action: string }).action === "instance-created"],
    ["first instance started", (e) => e.type === "lifecycle" && (e.metadata as { action: string }).action === "instance-started"],
  ];
  for (const [moment, isIt] of moments) {
    const ten = Array.from({ length: 10 }, (_, i) => `p${moments.findIndex((m) => m[0] === moment)}-${i}`);
    let reached!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    // What the daemon said was finished before it died: those must all survive the restart.
    const created = new Set<string>();
    const started = new Set<string>();
    const sub = await d.client.events(
      (e) => {
        if (e.type === "lifecycle") {
          const { action, source } = e.metadata as { action: string; source: string };
          const n = source.split("/").pop()!.split("?")[0]!;
          if (action === "instance-created") created.add(n);
          if (action === "instance-started") started.add(n);
        }
        if (isIt(e)) reached();
      },
      { types: ["operation", "lifecycle"] },
    );
    const launches = ten.map((n) => d.lxc(["launch", "bb", n], { allowFail: true, timeoutMs: 30_000 }));
    await reachedP;
    await d.kill9();
    sub.close();
    const createdBefore = [...created].sort();
    const startedBefore = [...started].sort();
    await Promise.all(launches);
    await d.launch();
    const ops = await d.client.get<Record<string, Operation[]>>("/1.0/operations?recursion=1");
    assert.deepEqual(Object.keys(ops), [], "no operation survives the restart");
    const present = await names(d);
    t.diagnostic(`killed at "${moment}": ${present.length} of 10 instances were whole (${createdBefore.length} created, ${startedBefore.length} started before the kill), the rest absent`);
    // Recovery undoes only the creates the kill interrupted: nothing finished is wiped.
    for (const n of createdBefore) assert.ok(present.includes(n), `${n} was created before the kill and survives (present: ${present.join(", ")})`);
    for (const n of startedBefore) assert.equal(await status(d, n), "Running", `${n} was started before the kill and still runs`);
    const undone = [...d.log.matchAll(/removed an instance whose creation was interrupted.*instance=(\S+)/g)].map((m) => m[1]!);
    for (const n of undone) assert.ok(!createdBefore.includes(n) && !present.includes(n), `only interrupted creates are undone: ${n}`);
    if (moment !== "first create running") assert.ok(createdBefore.length > 0, "an instance was created before the kill");
    for (const n of present) {
      // Whole: it starts (if the kill left it stopped), execs and deletes.
      if ((await status(d, n)) !== "Running") await d.lxc(["start", n]);
      assert.equal((await d.lxc(["exec", n, "--", "echo", "ok"])).stdout, "ok\n", n);
      await d.lxc(["delete", "--force", n]);
    }
    assert.deepEqual(await names(d), []);
    assert.deepEqual(await readdir(join(d.dir, "containers")).catch(() => []), [], `delay ${moment}: no liblxc leftovers`);
    assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers")), [], `delay ${moment}: no volumes left`);
    assert.equal(monitors(d), 0, `delay ${moment}: no container processes left`);
  }
});

test("after a host restart, boot.autostart instances come back up and the others stay down", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "auto1", "-c", "boot.autostart=true"]);
  await d.lxc(["launch", "bb", "was-running"]); // unset: comes back because it was running
  await d.lxc(["launch", "bb", "never", "-c", "boot.autostart=false"]);
  await d.lxc(["init", "bb", "stopped"]);
  // A host restart: the daemon dies and every container with it.
  await d.kill9();
  const lxcpath = join(d.dir, "containers");
  for (const n of ["auto1", "was-running", "never"]) await runCommand("lxc-stop", ["--kill", "-n", n, "-P", lxcpath]);
  await d.launch();
  const want: Record<string, string> = { auto1: "Running", "was-running": "Running", never: "Stopped", stopped: "Stopped" };
  for (let i = 0; i < 100; i++) {
    const now = await Promise.all(Object.keys(want).map((n) => status(d, n)));
    if (now.join() === Object.values(want).join()) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const [n, s] of Object.entries(want)) assert.equal(await status(d, n), s, n);
  assert.equal((await d.lxc(["exec", "auto1", "--", "echo", "up"])).stdout, "up\n");
  // A clean stop through the API is remembered: it does not come back on the next start.
  await d.lxc(["stop", "--force", "was-running"]);
  await d.stop();
  await d.launch();
  // Autostart runs in the background: wait until it says it is over, then nothing more may come.
  assert.match(await d.waitForLog(/autostart finished/), /started=0/, "nothing was autostarted");
  assert.equal(await status(d, "was-running"), "Stopped");
  await Promise.all(Object.keys(want).map((n) => d.lxc(["delete", "--force", n])));
});
