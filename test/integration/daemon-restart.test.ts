// A graceful restart of lodged (SIGTERM, then start again) leaves running containers alone:
// same init, still exec-able, still managed (stop, start, delete work).
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

const state = async (d: TestDaemon, name: string) => d.client.get<{ pid: number; status: string }>(`/1.0/instances/${name}/state`);

test("instances survive a graceful lodged restart: same init pid, exec works, still managed", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "c1"]);
  await d.lxc(["init", "bb", "c2"]);
  t.after(() => d.lxc(["delete", "--force", "c1", "c2"], { allowFail: true }));
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo before > /tmp/mark"]);
  const before = await state(d, "c1");
  assert.equal(before.status, "Running");

  assert.equal(await d.stop(), 0, "lodged exits cleanly on SIGTERM");
  // While it is down, the container keeps running on its own.
  const alive = (pid: number) => {
    try {
      return process.kill(pid, 0);
    } catch {
      return false;
    }
  };
  assert.ok(alive(before.pid), "init is alive while lodged is down");
  await d.launch();
  await d.waitForLog(/autostart finished/);

  const after = await state(d, "c1");
  assert.equal(after.status, "Running");
  assert.equal(after.pid, before.pid, "the very same init");
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", "/tmp/mark"])).stdout, "before\n", "the same running system");
  assert.equal((await state(d, "c2")).status, "Stopped", "a stopped instance stays stopped");
  // Still managed by the new daemon.
  await d.lxc(["stop", "c1"]);
  assert.equal((await state(d, "c1")).status, "Stopped");
  await d.lxc(["start", "c1"]);
  assert.notEqual((await state(d, "c1")).pid, before.pid);
  await d.lxc(["delete", "--force", "c1", "c2"]);
  assert.deepEqual(await d.client.get<string[]>("/1.0/instances"), []);
});
