/**
 * `lodged shutdown` (PUT /internal/shutdown), for when the host goes down: running instances
 * are stopped in boot.stop.priority order with their boot.host_shutdown_timeout (capped by
 * --timeout), the daemon exits, and the instances start again with the next daemon.
 */
import test from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { LODGED, runCommand, TestDaemon } from "../helpers/daemon.js";

const stateOf = async (d: TestDaemon, name: string) => (await d.lxc(["list", "--format", "csv", "-c", "s", name])).stdout.trim();

/** liblxc monitors of this daemon's containers still in the process table. */
async function monitors(d: TestDaemon): Promise<string[]> {
  const ps = (await runCommand("ps", ["-eo", "args"])).stdout;
  return ps.split("\n").filter((l) => l.startsWith(`[lxc monitor] ${join(d.dir, "containers")} `));
}

test("lodged shutdown stops the running instances by boot.stop.priority and exits; they come back with the daemon", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "lo", "-c", "boot.host_shutdown_timeout=60"]);
  await d.lxc(["launch", "bb", "hi", "-c", "boot.stop.priority=10", "-c", "boot.host_shutdown_timeout=1"]);
  await d.lxc(["init", "bb", "off"]);

  // A bad timeout is refused and changes nothing.
  const bad = await d.client.raw("PUT", "/internal/shutdown?timeout=soon");
  assert.equal(bad.status, 400);
  assert.match((bad.body as { error: string }).error, /"timeout" must be a number of seconds/);
  assert.equal(await stateOf(d, "lo"), "RUNNING");
  assert.equal((await runCommand(process.execPath, [LODGED, "shutdown", "--dir", d.dir, "--timeout", "soon"], { allowFail: true })).code, 2);

  const started = Date.now();
  const r = await runCommand(process.execPath, [LODGED, "shutdown", "--dir", d.dir, "--timeout", "3"], { allowFail: true, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  // "lo" asked for 60 s; --timeout capped it at 3 (busybox init itself takes ~2 s to stop).
  assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
  assert.equal(await d.exited(10_000), 0, "the daemon exited cleanly");
  assert.deepEqual(await monitors(d), [], "no container left running");

  // Higher priority first.
  const log = (await d.logFile()).split("\n").filter((l) => l.includes("stopping instance for host shutdown"));
  assert.equal(log.length, 2, log.join("\n"));
  assert.match(log[0]!, /\binstance="?hi\b/);
  assert.match(log[1]!, /\binstance="?lo\b/);

  // They were running when the host went down: the next daemon starts them again ("off" stays off).
  await d.launch();
  const deadline = Date.now() + 30_000;
  while ((await stateOf(d, "lo")) !== "RUNNING" || (await stateOf(d, "hi")) !== "RUNNING") {
    assert.ok(Date.now() < deadline, "both instances start again with the daemon");
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(await stateOf(d, "off"), "STOPPED");
  assert.equal((await d.lxc(["exec", "hi", "--", "echo", "back"])).stdout, "back\n");
  for (const n of ["lo", "hi", "off"]) await d.lxc(["delete", "--force", n]);
});
