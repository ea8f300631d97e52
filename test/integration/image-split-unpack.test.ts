import assert from "node:assert/strict";
import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { buildRootfs, scratchDir, writeMetadata } from "../helpers/images.js";

// Each file of a split image passes the member check on its own. The metadata tarball may hold
// a rootfs/ too; unpacked first, its symlink "rootfs/evil -> <host dir>" would have the rootfs
// tarball's "evil/pwned" written through it, on the host, as root.

test("a split image's rootfs tarball is never written through a symlink of its metadata tarball", async (t) => {
  const d = await TestDaemon.start(t);
  const dir = await scratchDir(t, "lodge-split-");
  const target = await scratchDir(t, "lodge-split-target-");

  const meta = join(dir, "meta");
  await mkdir(join(meta, "rootfs"), { recursive: true });
  await writeMetadata(meta);
  await symlink(target, join(meta, "rootfs/evil"));
  await runCommand("tar", ["-czf", join(dir, "meta.tar.gz"), "-C", meta, "metadata.yaml", "templates", "rootfs"]);

  // The rootfs tarball: a whole busybox tree, plus "evil/pwned" without an "evil/" entry (one
  // would replace the symlink).
  const root = join(dir, "root");
  await mkdir(join(root, "x/evil"), { recursive: true });
  await buildRootfs(root);
  await writeFile(join(root, "x/evil/pwned"), "pwned\n");
  const rootfs = join(dir, "rootfs.tar");
  await runCommand("tar", ["-cf", rootfs, "-C", join(root, "rootfs"), "--numeric-owner", "."]);
  await runCommand("tar", ["-rf", rootfs, "-C", join(root, "x"), "--numeric-owner", "evil/pwned"]);

  const r = await d.lxc(["image", "import", join(dir, "meta.tar.gz"), rootfs, "--alias", "split"], { allowFail: true });
  if (r.code === 0) {
    // Accepted (each file alone is fine): creating an instance unpacks it.
    const init = await d.lxc(["init", "split", "c1"], { allowFail: true });
    assert.deepEqual(await readdir(target), [], `nothing was written outside (lxc init exited ${init.code}: ${init.stderr.trim()})`);
    assert.equal(init.code, 0, init.stderr);
    const volume = join(d.dir, "storage-pools/default/containers/c1/rootfs");
    assert.ok((await readdir(join(volume, "bin"))).includes("busybox"), "the rootfs tarball made the rootfs");
    assert.deepEqual(await readdir(join(volume, "evil")), ["pwned"], "evil/ is a plain directory of the instance");
  } else assert.match(r.stderr, /Unsafe image:.*rootfs/, r.stderr);
  assert.deepEqual(await readdir(target), [], "nothing was written outside");
});
