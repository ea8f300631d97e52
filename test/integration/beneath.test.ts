import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { openRegularBeneath, readRegularBeneath } from "../../src/sys/beneath.js";
import { runCommand } from "../helpers/daemon.js";
import { scratchDir } from "../helpers/images.js";

// The N-API openat2 (native/napi/beneath.c) through its wrapper: what an image or a container
// may have put in a directory the daemon reads as host root.

test("files below a directory are read without following any link, and only if regular and small", async (t) => {
  const dir = await scratchDir(t, "lodge-beneath-");
  const outside = await scratchDir(t, "lodge-beneath-out-");
  await writeFile(join(outside, "secret"), "host secret\n");
  await mkdir(join(dir, "templates/sub"), { recursive: true });
  await writeFile(join(dir, "templates/a.tpl"), "a\n");
  await writeFile(join(dir, "templates/sub/b.tpl"), "b\n");
  await symlink(join(outside, "secret"), join(dir, "templates/abs.tpl"));
  await symlink("a.tpl", join(dir, "templates/rel.tpl"));
  await symlink(outside, join(dir, "linkdir"));
  await symlink("/proc/self/root/etc/passwd", join(dir, "templates/magic.tpl"));
  await runCommand("mkfifo", [join(dir, "templates/fifo.tpl")]);
  await runCommand("mknod", [join(dir, "templates/null.tpl"), "c", "1", "3"]);
  await writeFile(join(dir, "templates/big.tpl"), Buffer.alloc(4097, 0x61));

  assert.equal((await readRegularBeneath(dir, "templates/a.tpl", 4096)).toString(), "a\n");
  assert.equal((await readRegularBeneath(dir, "templates/sub/b.tpl", 4096)).toString(), "b\n");
  assert.equal((await readRegularBeneath(dir, "templates/big.tpl", 4097)).length, 4097);

  const refused: [string, RegExp][] = [
    ["templates/abs.tpl", /goes through a symbolic link/],
    ["templates/rel.tpl", /goes through a symbolic link/], // even one that stays inside
    ["templates/magic.tpl", /goes through a symbolic link/],
    ["linkdir/secret", /goes through a symbolic link/],
    ["templates/../../x", /leads outside its directory/],
    [join(outside, "secret"), /leads outside its directory/],
    ["templates/fifo.tpl", /is not a regular file \(it is a FIFO\)/],
    ["templates/null.tpl", /is not a regular file \(it is a character device\)/],
    ["templates", /is not a regular file \(it is a directory\)/],
    ["templates/big.tpl", /is larger than 4096 bytes/],
    ["templates/none.tpl", /does not exist/],
    ["templates/a.tpl/x", /goes through something that is not a directory/],
  ];
  for (const [path, why] of refused) {
    await assert.rejects(readRegularBeneath(dir, path, 4096), (e: Error & { path?: string }) => {
      assert.match(e.message, why, path);
      assert.equal(e.path, path);
      return true;
    });
  }

  // The stats come from the descriptor that was opened, before any content is read.
  const f = await openRegularBeneath(dir, "templates/a.tpl", 4096);
  try {
    assert.equal(f.stats.size, 2);
    assert.equal((await f.read()).toString(), "a\n");
  } finally {
    await f.close();
  }
});
