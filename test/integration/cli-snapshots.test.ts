import test from "node:test";
import assert from "node:assert/strict";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// `lodge snapshot`, `restore`, `copy`, `move` and snapshots in `delete` and `info`.

test("lodge snapshot, info, restore, move and delete of snapshots, copy and move -s refusals", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const ok = async (args: string[]) => {
    const r = await d.lodge(args, { allowFail: true });
    assert.equal(r.code, 0, `lodge ${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  const sh = (c: string, script: string) => d.lodge(["exec", c, "--", "sh", "-c", script], { allowFail: true });
  await ok(["launch", "bb", "c1"]);
  await sh("c1", "echo one > /root/f");
  await ok(["snapshot", "c1"]);
  await ok(["snapshot", "c1", "named", "--expiry", "2d"]);
  await sh("c1", "echo two > /root/f; touch /root/new");
  const info = (await ok(["info", "c1"])).stdout;
  assert.match(info, /Snapshots:/);
  assert.match(info, /snap0/);
  assert.match(info, /named/);
  const json = JSON.parse((await ok(["info", "c1", "--format", "json"])).stdout);
  assert.deepEqual(json.snapshots.map((s: { name: string }) => s.name), ["snap0", "named"]);
  assert.ok(!json.snapshots[1].expires_at.startsWith("0001"));

  await ok(["restore", "c1", "snap0"]);
  assert.equal((await sh("c1", "cat /root/f")).stdout, "one\n");
  assert.notEqual((await sh("c1", "test -e /root/new")).code, 0);

  // --reuse replaces; without it a taken name is refused.
  const taken = await d.lodge(["snapshot", "c1", "named"], { allowFail: true });
  assert.equal(taken.code, 1);
  assert.match(taken.stderr, /already exists/);
  await ok(["snapshot", "c1", "named", "--reuse"]);

  await ok(["move", "c1/named", "c1/tmp"]);
  await ok(["rename", "c1/tmp", "renamed"]);
  await ok(["delete", "c1/snap0"]);
  assert.deepEqual(JSON.parse((await ok(["query", "/1.0/instances/c1/snapshots"])).stdout), ["/1.0/instances/c1/snapshots/renamed"]);

  await ok(["copy", "c1", "c2", "-c", "user.copied=yes"]);
  await ok(["copy", "c1/renamed", "c3", "--instance-only", "-e"]);
  const c2 = JSON.parse((await ok(["query", "/1.0/instances/c2?recursion=1"])).stdout);
  assert.equal(c2.config["user.copied"], "yes");
  assert.deepEqual(c2.snapshots.map((s: { name: string }) => s.name), ["renamed"]);
  const c3 = JSON.parse((await ok(["query", "/1.0/instances/c3"])).stdout);
  assert.equal(c3.ephemeral, true);
  await ok(["start", "c2"]);
  assert.equal((await sh("c2", "cat /root/f")).stdout, "one\n");
  const refreshRunning = await d.lodge(["copy", "c1", "c2", "--refresh"], { allowFail: true });
  assert.match(refreshRunning.stderr, /must be stopped/);
  await ok(["stop", "-f", "c2"]);
  await ok(["copy", "c1", "c2", "--refresh"]);

  await ok(["move", "c3", "c4"]);
  const noPool = await d.lodge(["move", "c4", "-s", "nowhere"], { allowFail: true });
  assert.equal(noPool.code, 1);
  assert.match(noPool.stderr, /nowhere/);
  const usage = await d.lodge(["move", "c1/renamed", "c2/x"], { allowFail: true });
  assert.equal(usage.code, 2);
  assert.match((await ok(["--help"])).stdout, /^  snapshot\b/m);
  assert.match((await ok(["completion", "bash"])).stdout, /\['lodge copy'\]/);
});
