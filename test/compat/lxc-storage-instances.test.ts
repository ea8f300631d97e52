import test from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon } from "../helpers/daemon.js";
import { storagePoolArgs, type TestDriver } from "../helpers/storage-pools.js";

// Instances on each storage driver through the real `lxc` client (5.0.2): snapshot and
// restore, copy, rename and pool move, publish then launch, export then import under a second
// name. The dir driver runs twice: in its default layered mode (containers are overlayfs
// layers over the pool's image volume) and with dir.overlay=false (plain copies, as LXD).

const VARIANTS: { label: string; driver: TestDriver; extra: string[]; overlay: boolean }[] = [
  { label: "dir (layered)", driver: "dir", extra: [], overlay: true },
  { label: "dir (plain copies)", driver: "dir", extra: ["dir.overlay=false"], overlay: false },
  { label: "btrfs", driver: "btrfs", extra: [], overlay: false },
];

/** What the instance's files are, as it sees them: names, owners, modes, sizes, times, contents. */
const DIGEST =
  "cd / && find root srv bin sbin -exec stat -c '%n %u %g %a %s %Y' {} + | sort | md5sum && " +
  "find root srv -type f -exec md5sum {} + | sort | md5sum";

const sh = async (d: TestDaemon, c: string, cmd: string) => (await d.lxc(["exec", c, "--", "sh", "-c", cmd])).stdout;

for (const v of VARIANTS) {
  test(`${v.label}: snapshot and restore, copy, rename and pool move, publish then launch, export then import`, async (t) => {
    const d = await TestDaemon.start(t);
    await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
    await d.lxc(["storage", "create", "p1", v.driver, ...(await storagePoolArgs(t, v.driver)), ...v.extra]);
    await d.lxc(["launch", "bb", "c1", "-s", "p1"]);
    const source = JSON.parse((await d.lxc(["query", "/1.0/storage-pools/p1"])).stdout).config.source as string;
    const overlay = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").some((l) => l.includes(` ${join(source, "containers/c1/rootfs")} `) && l.includes(" - overlay "));
    assert.equal(overlay, v.overlay, "the rootfs is an overlay exactly in the layered mode");
    // Files of the container's own: owned by another user, a deletion from the image, 1 MiB of data.
    await sh(d, "c1", "echo one > /root/a && mkdir /srv && dd if=/dev/urandom of=/srv/blob bs=1024 count=1024 2>/dev/null && chown 1000:1000 /srv/blob && rm /bin/ls");
    const before = await sh(d, "c1", DIGEST);

    // Snapshot, then changes, then restore: the changes are gone, the snapshot's files back.
    await d.lxc(["snapshot", "c1", "s0"]);
    await sh(d, "c1", "echo two > /root/b && rm /root/a && echo changed > /srv/blob");
    await d.lxc(["restore", "c1", "s0"]);
    assert.equal(await sh(d, "c1", DIGEST), before, "restored to the snapshot");
    assert.equal(await sh(d, "c1", "cat /root/a; ls /root; ls /bin/ls 2>&1 || true"), "one\na\nls: /bin/ls: No such file or directory\n");

    // A copy has the same files and shares nothing with its source.
    await d.lxc(["copy", "c1", "c2"]);
    await d.lxc(["start", "c2"]);
    assert.equal(await sh(d, "c2", DIGEST), before, "the copy has the same files");
    await sh(d, "c2", "echo c2 > /root/only-c2");
    assert.equal(await sh(d, "c1", "ls /root"), "a\n", "the source does not see the copy's writes");

    // Rename, then a move to another pool: the files go along.
    await d.lxc(["stop", "-f", "c2"]);
    await d.lxc(["move", "c2", "c3"]);
    await d.lxc(["move", "c3", "-s", "default"]);
    assert.equal(JSON.parse((await d.lxc(["query", "/1.0/instances/c3"])).stdout).expanded_devices.root.pool, "default");
    await d.lxc(["start", "c3"]);
    assert.equal(await sh(d, "c3", "cat /root/only-c2 /root/a"), "c2\none\n");

    // Publish the stopped instance and launch the image on the pool.
    await d.lxc(["stop", "-f", "c1"]);
    await d.lxc(["publish", "c1", "--alias", "pub"]);
    await d.lxc(["launch", "pub", "c4", "-s", "p1"]);
    assert.equal(await sh(d, "c4", DIGEST), before, "the published image holds the instance's files");

    // Export, then import under a second name: the same files, owners included.
    const out = await mkdtemp(join(tmpdir(), "lodge-export-"));
    t.after(() => rm(out, { recursive: true, force: true }));
    await d.lxc(["export", "c1", join(out, "c1.tar.gz")]);
    await d.lxc(["import", join(out, "c1.tar.gz"), "c5", "-s", "p1"]);
    await d.lxc(["start", "c5"]);
    assert.equal(await sh(d, "c5", DIGEST), before, "the import has the exported files");
    assert.equal(await sh(d, "c5", "stat -c '%u:%g' /srv/blob"), "1000:1000\n");
    assert.deepEqual(JSON.parse((await d.lxc(["query", "/1.0/instances/c5/snapshots"])).stdout), ["/1.0/instances/c5/snapshots/s0"]);

    // Everything goes: the pool is empty and can be deleted.
    for (const c of ["c1", "c3", "c4", "c5"]) await d.lxc(["delete", "-f", c]);
    await d.lxc(["image", "delete", "pub", "bb"]);
    await d.lxc(["storage", "delete", "p1"]);
    assert.deepEqual(await readdir(join(d.dir, "storage-pools/default/containers")), []);
  });
}
