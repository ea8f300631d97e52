import test from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon } from "../helpers/daemon.js";

// A readonly=true disk stays read-only whatever the container's root does (issue 8, item 4):
// a mount made from inside the container's user namespace has its read-only flag unlocked,
// and `mount -o remount,bind,rw` from container root would then write the host's files
// (with shift=true as their real owners, root included). Tried at start and on hot-plug.

/** A host directory anyone may write (so only the mount's flag stands in the way), with a root-owned file. */
async function hostShare(t: test.TestContext): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "lodge-ro-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o755);
  const dir = join(base, "share");
  await mkdir(dir);
  await chmod(dir, 0o777);
  await writeFile(join(dir, "owned-by-root"), "host data\n", { mode: 0o666 });
  return dir;
}

const hostMountsOf = async (path: string) => (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.includes(path));

/** The attack from container root: remount read-write (several ways), then write. */
const ATTACK = [
  "mount -o remount,bind,rw /mnt/ro",
  "mount -o remount,rw /mnt/ro",
  "mount --bind /mnt/ro /mnt/again && mount -o remount,bind,rw /mnt/again",
].map((c) => `(${c}) 2>/dev/null`).join("; ") + "; echo pwned > /mnt/ro/owned-by-root; touch /mnt/ro/new; echo pwned > /mnt/again/new2; true";

for (const when of ["at start", "hot-plugged"] as const) {
  for (const shift of [false, true]) {
    test(`a readonly disk ${shift ? "with" : "without"} shift=true, ${when}, cannot be remounted read-write from container root`, async (t) => {
      const d = await TestDaemon.start(t);
      await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
      const share = await hostShare(t);
      const device = ["disk", `source=${share}`, "path=/mnt/ro", "readonly=true", ...(shift ? ["shift=true"] : [])];
      if (when === "at start") {
        await d.lxc(["init", "bb", "c1"]);
        await d.lxc(["config", "device", "add", "c1", "ro", ...device]);
        await d.lxc(["start", "c1"]);
      } else {
        await d.lxc(["launch", "bb", "c1"]);
        await d.lxc(["config", "device", "add", "c1", "ro", ...device]);
      }
      t.after(() => d.lxc(["delete", "--force", "c1"], { allowFail: true }));
      const sh = (cmd: string) => d.lxc(["exec", "c1", "--", "sh", "-c", cmd], { allowFail: true });

      assert.equal((await sh("cat /mnt/ro/owned-by-root")).stdout, "host data\n", "the disk is there and readable");
      assert.match((await sh("grep ' /mnt/ro ' /proc/self/mountinfo")).stdout, /\sro[,\s]/, "it is mounted read-only");
      const owner = shift ? "0" : "65534"; // shifted: host root is root inside; else unmapped (nobody)
      assert.equal((await sh("stat -c %u /mnt/ro/owned-by-root")).stdout.trim(), owner, "the owner is seen as shift says");
      await sh("mkdir -p /mnt/again; " + ATTACK);
      assert.equal(await readFile(join(share, "owned-by-root"), "utf8"), "host data\n", "the host file is unchanged");
      assert.deepEqual((await readdir(share)).sort(), ["owned-by-root"], "nothing was created in the host directory");
      assert.match((await sh("grep ' /mnt/ro ' /proc/self/mountinfo")).stdout, /\sro[,\s]/, "still read-only");
      // Nothing the daemon staged for the mount is left on the host.
      // The container's own rootfs (an overlay: dir pools layer containers) is the one mount there.
      const rootfs = ` ${join(d.dir, "storage-pools/default/containers/c1/rootfs")} `;
      assert.deepEqual((await hostMountsOf(d.dir)).filter((l) => !l.includes(rootfs)), [], "no host mount under LODGE_DIR");
      assert.deepEqual(await hostMountsOf(share), [], "no host mount of the source");
      // Still a working container: the disk comes back read-only after a restart, and goes.
      await d.lxc(["restart", "c1"]);
      assert.equal((await sh("cat /mnt/ro/owned-by-root")).stdout, "host data\n");
      assert.equal((await sh("stat -c %u /mnt/ro/owned-by-root")).stdout.trim(), owner);
      assert.notEqual((await sh("mount -o remount,bind,rw /mnt/ro")).code, 0, "the remount is refused after a restart too");
      await d.lxc(["config", "device", "remove", "c1", "ro"]);
      assert.equal((await sh("grep -c ' /mnt/ro ' /proc/self/mountinfo")).stdout.trim(), "0");
    });
  }
}
