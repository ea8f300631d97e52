import test from "node:test";
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { readTar } from "../../src/images/tar-reader.js";

test("a sparse file in a PAX archive (GNU tar --sparse --format=posix) is listed by its own name and size", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-tar-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // 8 MiB with data only at its start and its end: GNU tar stores it as a sparse member.
  const fh = await open(join(dir, "rootfs.img"), "w");
  await fh.write(Buffer.from("QFI\xfb", "latin1"), 0, 4, 0);
  await fh.write(Buffer.from("end"), 0, 3, 8 * 1024 * 1024 - 3);
  await fh.close();
  await writeFile(join(dir, "metadata.yaml"), "architecture: x86_64\n");
  execFileSync("tar", ["--create", "--format=posix", "--sparse", "--file", join(dir, "out.tar"), "-C", dir, "metadata.yaml", "rootfs.img"]);
  const listing = await readTar(createReadStream(join(dir, "out.tar")), { capture: ["metadata.yaml"] });
  const names = listing.members.map((m) => m.name);
  assert.deepEqual(names, ["metadata.yaml", "rootfs.img"], "not GNUSparseFile.N/rootfs.img");
  assert.equal(listing.members[1]!.size, 8 * 1024 * 1024);
  assert.equal(listing.captured.get("metadata.yaml")?.toString(), "architecture: x86_64\n");
});
