import test from "node:test";
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { checkMembers } from "../../src/images/members.js";
import type { TarMember } from "../../src/images/tar-reader.js";
import { planImport } from "../../src/backups/import-check.js";
import { optimizedHeaderYaml } from "../../src/backups/optimized.js";

const file = (name: string): TarMember => ({ name, type: "file", linkname: "", size: 1 });
const dir = (name: string): TarMember => ({ name, type: "dir", linkname: "", size: 0 });

const config = {
  container: { name: "c1", type: "container", config: {}, devices: {}, profiles: ["default"] },
  snapshots: [{ name: "s0", config: { "user.a": "1" }, devices: {}, profiles: ["default"], expires_at: "2031-01-01T00:00:00Z" }],
};

function optimized(opts: { snapshots?: string[]; header?: string; extra?: TarMember[]; optimized?: boolean } = {}) {
  const snapshots = opts.snapshots ?? ["s0"];
  const index = { name: "c1", backend: "btrfs", pool: "p", snapshots, optimized: opts.optimized ?? true, optimized_header: true, type: "container", config };
  const members = [file("backup/index.yaml"), file("backup/optimized_header.yaml"), ...snapshots.map((s) => file(`backup/snapshots/${s}.bin`)), file("backup/container.bin"), ...(opts.extra ?? [])];
  const captured = new Map([
    ["backup/index.yaml", Buffer.from(stringify(index))],
    ["backup/optimized_header.yaml", Buffer.from(opts.header ?? optimizedHeaderYaml(snapshots))],
  ]);
  return { members, captured };
}

test("an optimized backup's streams pass the member check as regular files only", () => {
  checkMembers(optimized().members, "backup tarball", "backup");
  assert.throws(
    () => checkMembers([file("backup/index.yaml"), { name: "backup/container.bin", type: "symlink", linkname: "/etc/shadow", size: 0 }], "t", "backup"),
    /"backup\/container\.bin" is outside the backup's layout/,
  );
  assert.throws(() => checkMembers([file("backup/index.yaml"), file("backup/other.bin")], "t", "backup"), /outside the backup's layout/);
});

test("an optimized backup is planned from its index: the streams in order, the snapshots as its config has them", () => {
  const plan = planImport(optimized());
  assert.deepEqual(plan.streams, ["backup/container.bin", "backup/snapshots/s0.bin"]);
  assert.equal(plan.trees, undefined);
  assert.deepEqual(plan.snapshots.map((s) => [s.name, s.config["user.a"], s.expires_at]), [["s0", "1", "2031-01-01T00:00:00Z"]]);
});

test("optimized backups that do not hold together are refused", () => {
  const noStream = optimized();
  noStream.members = noStream.members.filter((m) => m.name !== "backup/snapshots/s0.bin");
  assert.throws(() => planImport(noStream), /backup\/snapshots\/s0\.bin is missing/);
  assert.throws(() => planImport(optimized({ extra: [dir("backup/container"), file("backup/container/backup.yaml")] })), /does not belong in an optimized backup/);
  const nested = stringify({ subvolumes: [{ path: "/", snapshot: "s0", readonly: true }, { path: "/", snapshot: "", readonly: false }, { path: "/rootfs/var/lib/machines", snapshot: "", readonly: false }] });
  assert.throws(() => planImport(optimized({ header: nested })), /nested btrfs subvolume \(\/rootfs\/var\/lib\/machines of the instance\)/);
  assert.throws(() => planImport(optimized({ header: optimizedHeaderYaml([]) })), /does not list the instance and exactly the snapshots/);
  // Streams in a backup whose index does not say it is optimized.
  assert.throws(() => planImport(optimized({ optimized: false })), /is a storage driver's stream, but backup\/index\.yaml does not say the backup is optimized/);
});
