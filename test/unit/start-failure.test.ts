import { test } from "node:test";
import assert from "node:assert/strict";
import { startFailure } from "../../src/instances/drivers/lxc/start-failure.js";

const line = (where: string, msg: string) => `lxc-start c1 20261127162626.325 ERROR    x - ../src/lxc/${where} - ${msg}`;

test("start failure: this start's cause first, generic follow-ups dropped, paths shown inside the container", () => {
  const earlier = line("conf.c:old:1", "Something from an earlier start") + "\n";
  const log = Buffer.from(
    earlier +
      [
        "lxc-start c1 20261127162626.300 WARN     cgfsng - ../src/lxc/cgroups/cgfsng.c:fchowmodat:1619 - a warning",
        line("utils.c:safe_mount:1220", 'Invalid argument - Failed to mount "/srv/a" onto "/usr/lib/x86_64-linux-gnu/lxc/rootfs/mnt/n"'),
        line("conf.c:mount_entry:2446", 'Invalid argument - Failed to mount "/srv/a" on "/usr/lib/x86_64-linux-gnu/lxc/rootfs/mnt/n"'),
        line("conf.c:lxc_setup:4419", "Failed to setup mount entries"),
        line("sync.c:sync_wait:34", "An error occurred in another process (expected sequence number 3)"),
        line("start.c:__lxc_start:2107", 'Failed to spawn container "c1"'),
        line("lxccontainer.c:wait_on_daemonized_start:878", 'Received container state "ABORTING" instead of "RUNNING"'),
      ].join("\n"),
  );
  assert.equal(startFailure(log, Buffer.byteLength(earlier), "stderr"), 'Invalid argument - Failed to mount "/srv/a" on "/mnt/n" (in the container)');
  // Only generic lines: they are better than nothing; no lines at all: the tool's stderr.
  const generic = Buffer.from(line("start.c:__lxc_start:2107", 'Failed to spawn container "c1"'));
  assert.equal(startFailure(generic, 0, "x"), 'Failed to spawn container "c1"');
  assert.equal(startFailure(Buffer.from(earlier), Buffer.byteLength(earlier), " lxc-start: failed \n"), "lxc-start: failed");
});
