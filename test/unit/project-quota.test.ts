import test from "node:test";
import assert from "node:assert/strict";
import { enforcesProjectQuotas, parseMountinfo } from "../../src/storage/drivers/project-quota.js";

// Lines as /proc/self/mountinfo shows them (proc(5)): per-mount options in field 6, the
// filesystem type, source and superblock options after the "-".
const MOUNTINFO = [
  "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro",
  "45 27 7:0 / /srv/xfs\\040pool rw,relatime shared:30 - xfs /dev/loop0 rw,attr2,inode64,logbufs=8,logbsize=32k,prjquota",
  "46 27 7:1 / /srv/xfs-acct rw,relatime - xfs /dev/loop1 rw,attr2,inode64,pqnoenforce",
  "47 27 7:2 / /srv/ext4 rw,relatime - ext4 /dev/loop2 rw,prjquota",
  "48 27 7:3 / /srv/xfs-none rw,relatime - xfs /dev/loop3 rw,inode64,noquota",
  "49 27 0:45 / /srv/tmp rw - tmpfs tmpfs rw,prjquota",
].join("\n");

test("mountinfo: device numbers, the mount point (escapes undone), type and both sets of options", () => {
  const m = parseMountinfo(MOUNTINFO);
  assert.equal(m.length, 6);
  assert.deepEqual({ ...m[1], options: undefined }, { major: 7, minor: 0, mountPoint: "/srv/xfs pool", fsType: "xfs", options: undefined });
  assert.ok(m[1]!.options.has("relatime") && m[1]!.options.has("prjquota"));
});

test("project quotas are enforced on XFS with prjquota and ext4 with prjquota only", () => {
  const by = new Map(parseMountinfo(MOUNTINFO).map((m) => [m.mountPoint, enforcesProjectQuotas(m)]));
  assert.deepEqual(Object.fromEntries(by), {
    "/": false,
    "/srv/xfs pool": true,
    "/srv/xfs-acct": false, // accounting without enforcement limits nothing
    "/srv/ext4": true,
    "/srv/xfs-none": false,
    "/srv/tmp": false, // not a filesystem the dir driver knows project ids on
  });
});
