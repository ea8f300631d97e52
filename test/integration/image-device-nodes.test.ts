import assert from "node:assert/strict";
import { lstat, mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { buildRootfs, scratchDir, writeMetadata } from "../helpers/images.js";

// Issue 8, item 3: a hostile image carries device nodes (a block device 7:0, i.e. a loop device,
// mode 0666, and a char device 1:3) under every spelling of a path, in unified tarballs, split
// rootfs tarballs and SquashFS rootfs. Whatever Lodge accepts, no device node may end up anywhere
// under its directory (image cache, instance volumes); what it refuses, it refuses clearly.

/** Every char or block device under dir, found with lstat (no link is followed). */
async function deviceNodes(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      const st = await lstat(p);
      if (st.isCharacterDevice() || st.isBlockDevice()) found.push(p);
      else if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return found;
}

/** A directory holding the two device nodes an attacker wants in the instance. */
async function devices(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await runCommand("mknod", ["-m", "0666", join(dir, "x"), "b", "7", "0"]);
  await runCommand("mknod", ["-m", "0666", join(dir, "y"), "c", "1", "3"]);
}

/**
 * A gzip tarball of `members` (relative to src), with the device nodes of src/devs appended
 * under `prefix` exactly as spelled (GNU tar's --transform keeps "./", "//" and "." as given).
 */
async function tarWithDevices(src: string, out: string, members: string[], prefix: string): Promise<string> {
  const plain = out.replace(/\.gz$/, "");
  await runCommand("tar", ["--create", "--file", plain, "--directory", src, "--numeric-owner", "--owner=0", "--group=0", ...members]);
  await runCommand("tar", ["--append", "--file", plain, "--directory", src, "--numeric-owner", `--transform=s,^devs/,${prefix},`, "devs/x", "devs/y"]);
  await runCommand("gzip", ["-f", plain]);
  const listing = (await runCommand("tar", ["-tzf", out])).stdout;
  assert.ok(listing.includes(`${prefix}x\n`), `the tarball holds "${prefix}x" as spelled:\n${listing}`);
  return out;
}

test("device nodes in an image never reach the host, whatever their spelling and the image format", async (t) => {
  const d = await TestDaemon.start(t);
  const dir = await scratchDir(t, "lodge-devs-");
  const src = join(dir, "src");
  await mkdir(src);
  await buildRootfs(src);
  await writeMetadata(src);
  await devices(join(src, "devs"));
  const rootfsMembers = async () => (await readdir(join(src, "rootfs"))).map((n) => `rootfs/${n}`);

  // Split images share one metadata tarball; their rootfs tarballs are made from inside rootfs/
  // ("./bin/…", as distribution images are), plus the devices.
  const meta = join(dir, "meta.tar.gz");
  await runCommand("tar", ["-czf", meta, "-C", src, "metadata.yaml", "templates"]);
  const rootSrc = join(dir, "rootsrc");
  await mkdir(rootSrc);
  await runCommand("cp", ["-a", join(src, "rootfs"), join(rootSrc, "tree")]);
  await runCommand("cp", ["-a", join(src, "devs"), join(rootSrc, "devs")]);
  const rootfsTar = async (name: string, prefix: string) => {
    const out = join(dir, name);
    const plain = out.replace(/\.gz$/, "");
    await runCommand("tar", ["-cf", plain, "-C", join(rootSrc, "tree"), "--numeric-owner", "."]);
    await runCommand("tar", ["-rf", plain, "-C", rootSrc, "--numeric-owner", `--transform=s,^devs/,${prefix},`, "devs/x", "devs/y"]);
    await runCommand("gzip", ["-f", plain]);
    return out;
  };
  const squash = async (name: string, devDir: string) => {
    const tree = join(dir, `${name}-tree`);
    await runCommand("cp", ["-a", join(src, "rootfs"), tree]);
    await devices(join(tree, devDir));
    const out = join(dir, name);
    await runCommand("mksquashfs", [tree, out, "-noappend", "-quiet", "-all-root"]);
    return out;
  };

  type Case = { what: string; files: string[]; refused?: RegExp };
  const unified = (prefix: string) => tarWithDevices(src, join(dir, `u-${prefix.replace(/\W/g, "_")}.tar.gz`), ["metadata.yaml", "templates", "rootfs"], prefix);
  const cases: Case[] = [
    { what: "unified rootfs/dev/x", files: [await unified("rootfs/dev/")] },
    { what: "unified ./rootfs/dev/x", files: [await unified("./rootfs/dev/")] },
    { what: "unified rootfs/./dev/x", files: [await unified("rootfs/./dev/")], refused: /entry "rootfs\/\.\/dev\/x" is not a plain path/ },
    { what: "unified rootfs//dev/x", files: [await unified("rootfs//dev/")], refused: /entry "rootfs\/\/dev\/x" is not a plain path/ },
    { what: "unified ././rootfs/dev/x", files: [await unified("././rootfs/dev/")], refused: /entry "\.\/\.\/rootfs\/dev\/x" is not a plain path/ },
    { what: "unified top-level dev/x", files: [await unified("dev/")], refused: /entry "dev\/x" is a device node outside \/dev/ },
    { what: "unified rootfs/etc/x", files: [await unified("rootfs/etc/")], refused: /entry "rootfs\/etc\/x" is a device node outside \/dev/ },
    // The layout as it would be if ./rootfs/ were written as a whole tree with "./".
    {
      what: "unified, every member ./-prefixed",
      files: [await tarWithDevices(src, join(dir, "u-all-dot.tar.gz"), ["./metadata.yaml", "./templates", ...(await rootfsMembers()).map((m) => `./${m}`)], "./rootfs/dev/")],
    },
    { what: "split, rootfs tarball dev/x", files: [meta, await rootfsTar("r-dev.tar.gz", "dev/")] },
    { what: "split, rootfs tarball ./dev/x", files: [meta, await rootfsTar("r-dotdev.tar.gz", "./dev/")] },
    { what: "split, rootfs tarball .//dev/x", files: [meta, await rootfsTar("r-dotslash.tar.gz", ".//dev/")], refused: /entry "\.\/\/dev\/x" is not a plain path/ },
    { what: "split, rootfs tarball dev/./x", files: [meta, await rootfsTar("r-devdot.tar.gz", "dev/./")], refused: /entry "dev\/\.\/x" is not a plain path/ },
    { what: "split, rootfs tarball ./etc/x", files: [meta, await rootfsTar("r-etc.tar.gz", "./etc/")], refused: /entry "\.\/etc\/x" is a device node outside \/dev/ },
    { what: "split, SquashFS dev/x", files: [meta, await squash("s-dev.squashfs", "dev")] },
    { what: "split, SquashFS dev/sub/x", files: [meta, await squash("s-devsub.squashfs", "dev/sub")] },
    { what: "split, SquashFS etc/x", files: [meta, await squash("s-etc.squashfs", "etc")], refused: /entry "etc\/x" is a device node outside \/dev/ },
  ];

  let n = 0;
  for (const c of cases) {
    const r = await d.lxc(["image", "import", ...c.files, "--alias", `img${n}`], { allowFail: true });
    // An image may be refused (with an error naming the entry) or accepted; accepted, it must
    // leave no device node behind, which the walk at the end checks.
    if (c.refused && r.code !== 0) {
      assert.match(r.stderr, /Unsafe image:/, `${c.what}: ${r.stderr}`);
      assert.match(r.stderr, c.refused, `${c.what}: ${r.stderr}`);
      continue;
    }
    assert.equal(r.code, 0, `${c.what}: the import should work: ${r.stderr}`);
    // Creating an instance unpacks the image into the cache and copies it into a volume.
    const init = await d.lxc(["init", `img${n}`, `c${n}`], { allowFail: true });
    assert.equal(init.code, 0, `${c.what}: lxc init: ${init.stderr}`);
    n++;
  }
  // The rest of the tree arrived: the images are usable, only the device nodes are gone.
  for (let i = 0; i < n; i++)
    assert.ok((await lstat(join(d.dir, `storage-pools/default/containers/c${i}/rootfs/bin/busybox`))).isFile(), `c${i} has its rootfs`);
  assert.deepEqual(await deviceNodes(d.dir), [], "no device node anywhere under LODGE_DIR");
});
