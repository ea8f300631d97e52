import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { parse as parseYaml } from "yaml";
import { sourcesList } from "../../src/images/builder/debootstrap.js";
import { imageFingerprint, writeMetadata } from "../../src/images/builder/pack.js";
import { resolveInRootfs, writeRootfsFile } from "../../src/images/builder/rootfs-file.js";
import { createHash } from "node:crypto";

async function tempDir(t: TestContext): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "lodge-unit-"));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

test("files are written inside the rootfs even through absolute symlinks", async (t) => {
  const d = await tempDir(t);
  const rootfs = path.join(d, "rootfs");
  const outside = path.join(d, "outside");
  await mkdir(path.join(rootfs, "usr/bin"), { recursive: true });
  await mkdir(outside);
  await symlink("usr/bin", path.join(rootfs, "bin")); // merged /usr, as Debian has it
  await symlink(outside, path.join(rootfs, "escape")); // absolute: means <rootfs><outside>
  await mkdir(path.join(rootfs, "etc"));
  await symlink("/run/resolv.conf", path.join(rootfs, "etc/resolv.conf"));

  await writeRootfsFile(rootfs, "/bin/hello", "hi\n", 0o755);
  assert.equal(await readFile(path.join(rootfs, "usr/bin/hello"), "utf8"), "hi\n");
  assert.equal((await lstat(path.join(rootfs, "usr/bin/hello"))).mode & 0o7777, 0o755);

  await writeRootfsFile(rootfs, "/escape/x", "no", 0o644);
  await assert.rejects(readFile(path.join(outside, "x")), /ENOENT/);
  assert.equal(await readFile(path.join(rootfs, outside, "x"), "utf8"), "no");

  assert.equal(await resolveInRootfs(rootfs, "/../../../etc/passwd"), path.join(rootfs, "etc/passwd"));

  // A symlink in the last place is replaced by the file, not followed.
  await writeRootfsFile(rootfs, "/etc/resolv.conf", "nameserver 10.0.0.1\n", 0o644);
  assert.ok((await lstat(path.join(rootfs, "etc/resolv.conf"))).isFile());
  await assert.rejects(readlink(path.join(rootfs, "etc/resolv.conf")));
});

test("metadata.yaml carries the templates, each file in templates/", async (t) => {
  const d = await tempDir(t);
  const meta = await writeMetadata(
    d,
    {
      architecture: "x86_64",
      creation_date: 1700000000,
      expiry_date: 1702592000,
      properties: { os: "busybox", release: "1.35.0", architecture: "x86_64", description: "d", variant: "default", serial: "20231114_2213" },
    },
    {
      "/etc/hostname": { when: ["create", "copy"], content: "{{ container.name }}\n" },
      "/srv/hostname": { when: ["start"], content: "x", create_only: true, properties: { a: "b" } },
    },
  );
  const parsed = parseYaml(await readFile(path.join(d, "metadata.yaml"), "utf8"));
  assert.deepEqual(parsed, meta);
  assert.deepEqual(parsed.templates, {
    "/etc/hostname": { when: ["create", "copy"], template: "hostname.tpl" },
    "/srv/hostname": { when: ["start"], template: "srv-hostname.tpl", create_only: true, properties: { a: "b" } },
  });
  assert.equal(await readFile(path.join(d, "templates/hostname.tpl"), "utf8"), "{{ container.name }}\n");
  assert.equal(await readFile(path.join(d, "templates/srv-hostname.tpl"), "utf8"), "x");
});

test("no templates: no templates key and no templates/ directory", async (t) => {
  const d = await tempDir(t);
  const meta = await writeMetadata(d, { architecture: "x86_64", creation_date: 1, expiry_date: 2, properties: {} as never }, {});
  assert.equal("templates" in meta, false);
  await assert.rejects(lstat(path.join(d, "templates")));
});

test("the fingerprint is sha256 over the files' bytes in order", async (t) => {
  const d = await tempDir(t);
  await writeFile(path.join(d, "a"), "meta");
  await writeFile(path.join(d, "b"), "rootfs");
  const want = createHash("sha256").update("metarootfs").digest("hex");
  assert.equal(await imageFingerprint([path.join(d, "a"), path.join(d, "b")]), want);
  assert.equal(await imageFingerprint([path.join(d, "a")]), createHash("sha256").update("meta").digest("hex"));
});

test("sources.list adds updates and security only for a stable suite on Debian's mirror", () => {
  assert.equal(
    sourcesList({ suite: "bookworm", mirror: "http://deb.debian.org/debian", components: ["main", "contrib"] }),
    "deb http://deb.debian.org/debian bookworm main contrib\n" +
      "deb http://deb.debian.org/debian bookworm-updates main contrib\n" +
      "deb http://deb.debian.org/debian-security bookworm-security main contrib\n",
  );
  assert.equal(sourcesList({ suite: "sid", mirror: "http://deb.debian.org/debian", components: ["main"] }), "deb http://deb.debian.org/debian sid main\n");
  assert.equal(sourcesList({ suite: "bookworm", mirror: "http://mirror.example/debian", components: ["main"] }), "deb http://mirror.example/debian bookworm main\n");
});
