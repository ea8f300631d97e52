import test from "node:test";
import assert from "node:assert/strict";
import { access, readdir } from "node:fs/promises";
import { join } from "node:path";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// Ephemeral instances (`lxc launch -e`) are deleted when they stop, whichever way they stop.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

const names = async (d: TestDaemon) => ((await d.client.get<string[]>("/1.0/instances")) ?? []).map((u) => u.split("/").pop()!).sort();

/** What is left of an instance: listed, and its driver artefacts, volume and logs on disk. */
async function leftOf(d: TestDaemon, n: string): Promise<string[]> {
  const left = (await names(d)).includes(n) ? [`${n} is listed`] : [];
  for (const dir of ["containers", "storage-pools/default/containers", "logs"])
    if ((await readdir(join(d.dir, dir)).catch(() => [] as string[])).includes(n)) left.push(`${dir}/${n}`);
  return left;
}

async function assertGone(d: TestDaemon, n: string) {
  assert.deepEqual(await leftOf(d, n), [], `${n} is gone`);
}

/** A stop from inside is noticed in the background: gone within the time given. */
async function waitGone(d: TestDaemon, n: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while ((await leftOf(d, n)).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await assertGone(d, n);
}

test("lxc launch -e then lxc stop: the instance is gone; lxc restart keeps it", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "e1", "-e"]);
  assert.equal((await d.client.get<{ ephemeral: boolean }>("/1.0/instances/e1")).ephemeral, true);
  await d.lxc(["stop", "e1"]);
  await assertGone(d, "e1");

  await d.lxc(["launch", "bb", "e2", "--ephemeral"]);
  const pid = (await d.client.get<{ pid: number }>("/1.0/instances/e2/state")).pid;
  await d.lxc(["restart", "e2"]);
  // Give a stop notice time to arrive: it must find the instance running again and leave it.
  await new Promise((r) => setTimeout(r, 1500));
  const after = await d.client.get<{ status: string; pid: number }>("/1.0/instances/e2/state");
  assert.equal(after.status, "Running", "restarted, not deleted");
  assert.notEqual(after.pid, pid, "it really restarted");
  assert.equal((await d.lxc(["exec", "e2", "--", "echo", "still-here"])).stdout, "still-here\n");
  await d.lxc(["stop", "--force", "e2"]);
  await assertGone(d, "e2");

  // delete --force of a running ephemeral instance: its stop deletes it; both clients succeed.
  await d.lxc(["launch", "bb", "e8", "-e"]);
  await d.lxc(["delete", "--force", "e8"]);
  await assertGone(d, "e8");
  await d.lxc(["launch", "bb", "e9", "-e"]);
  await d.lodge(["delete", "--force", "e9"]);
  await assertGone(d, "e9");
});

test("a shutdown from inside deletes an ephemeral instance within seconds; a plain one is kept, stopped", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "e3", "-e"]);
  await d.lxc(["launch", "bb", "keep"]);
  await d.lxc(["exec", "e3", "--", "poweroff"], { allowFail: true });
  await d.lxc(["exec", "keep", "--", "poweroff"], { allowFail: true });
  await waitGone(d, "e3", 15_000);
  assert.ok((await names(d)).includes("keep"));

  // init killed: as much a stop from inside as a poweroff.
  await d.lxc(["launch", "bb", "e4", "-e"]);
  process.kill((await d.client.get<{ pid: number }>("/1.0/instances/e4/state")).pid, "SIGKILL");
  await waitGone(d, "e4", 15_000);

  // Made ephemeral while it runs (PATCH), then halted from inside.
  await d.lxc(["launch", "bb", "e5"]);
  await d.client.patch("/1.0/instances/e5", { ephemeral: true });
  await d.lxc(["exec", "e5", "--", "halt"], { allowFail: true });
  await waitGone(d, "e5", 15_000);

  assert.equal((await d.client.get<{ status: string }>("/1.0/instances/keep/state")).status, "Stopped");
  assert.deepEqual(await names(d), ["keep"]);
  // Recorded as stopped, as LXD does: the next daemon start leaves it stopped.
  const power = async () => (await d.client.get<{ config: Record<string, string> }>("/1.0/instances/keep")).config["volatile.last_state.power"];
  for (let i = 0; i < 100 && (await power()) !== "STOPPED"; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await power(), "STOPPED");
  await d.stop();
  await d.launch();
  assert.match(await d.waitForLog(/autostart finished/), /started=0/, "nothing was autostarted");
  assert.equal((await d.client.get<{ status: string }>("/1.0/instances/keep/state")).status, "Stopped");
});

test("an ephemeral instance that stops while lodged is killed is gone once lodged is back", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "e6", "-e"]);
  await d.lxc(["launch", "bb", "e7", "-e"]);
  await d.kill9();
  const lxcpath = join(d.dir, "containers");
  await runCommand("lxc-attach", ["-n", "e6", "-P", lxcpath, "--", "poweroff"], { allowFail: true });
  // Down for sure before lodged comes back: its monitor has removed its pidfile.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && (await access(join(lxcpath, "e6", "monitor.pid")).then(() => true, () => false)))
    await new Promise((r) => setTimeout(r, 100));
  await d.launch();
  await assertGone(d, "e6");
  assert.equal((await d.client.get<{ status: string }>("/1.0/instances/e7/state")).status, "Running", "the running one is kept");
  // The restarted daemon watches what still runs.
  await d.lxc(["exec", "e7", "--", "poweroff"], { allowFail: true });
  await waitGone(d, "e7", 15_000);
});

test("a delete that lodged was killed in the middle of is finished at the next start, never shown half-done", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "h2"]);
  await d.stop();
  // Where a kill mid-delete leaves it: the record marked, the volume still there.
  const { SqliteStore } = await import("../../src/state/sqlite.js");
  const { databasePath } = await import("../../src/api/paths.js");
  const store = SqliteStore.open(databasePath(d.dir));
  const doc = (await store.get<Record<string, unknown>>("instances/default/h2"))!;
  await store.put("instances/default/h2", { ...doc.value, phase: "deleting" });
  await store.close();
  await d.launch();
  await assertGone(d, "h2");
});
