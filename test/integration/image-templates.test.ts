import assert from "node:assert/strict";
import { lstat, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { buildRootfs, DEFAULT_METADATA, scratchDir, writeMetadata } from "../helpers/images.js";

// Issue 8, item 2: image templates are rendered by the daemon as host root, so a hostile image
// must not get a host file read into its container through them (a template that is a symlink
// to /etc/shadow), nor stall the daemon (a FIFO), nor have a template written into a device
// node or a FIFO it left in the rootfs.

const LEAK_METADATA = `${DEFAULT_METADATA}  /etc/leak:
    when: [create]
    template: leak.tpl
`;

const HOST_SECRET = "/etc/shadow";

/** An image source tree (metadata.yaml, templates/, busybox rootfs/) that `shape` may alter. */
async function imageSource(t: TestContext, shape?: (src: string) => Promise<void>): Promise<string> {
  const src = join(await scratchDir(t, "lodge-tpl-"), "src");
  await mkdir(src);
  await buildRootfs(src);
  await writeMetadata(src, LEAK_METADATA);
  await writeFile(join(src, "templates/leak.tpl"), "rendered for {{ instance.name }}\n");
  await shape?.(src);
  return src;
}

const volume = (d: TestDaemon, name: string) => join(d.dir, "storage-pools/default/containers", name);

/** What the instance's /etc/leak holds after a start, if anything. */
const leaked = (d: TestDaemon, name: string) => readFile(join(volume(d, name), "rootfs/etc/leak"), "utf8").catch(() => undefined);

test("an image whose templates or metadata.yaml are links is refused at import, naming the entry", async (t) => {
  const d = await TestDaemon.start(t);
  const shadow = await readFile(HOST_SECRET, "utf8");

  const linkedTemplate = await imageSource(t, async (src) => {
    await rm(join(src, "templates/leak.tpl"));
    await symlink(HOST_SECRET, join(src, "templates/leak.tpl"));
  });
  // templates/ itself a link to /etc, with the template named after the host file.
  const linkedDir = await imageSource(t, async (src) => {
    await writeFile(join(src, "metadata.yaml"), LEAK_METADATA.replace("template: leak.tpl", "template: shadow"));
    await rm(join(src, "templates"), { recursive: true });
    await symlink("/etc", join(src, "templates"));
  });
  const out = await scratchDir(t, "lodge-tpl-out-");
  const tarball = async (name: string, src: string, members = ["metadata.yaml", "templates", "rootfs"]) => {
    const file = join(out, name);
    await runCommand("tar", ["-czf", file, "-C", src, "--numeric-owner", ...members]);
    return file;
  };
  // A good metadata.yaml first, then a symlink of the same name over it: the import reads the
  // first, the unpack leaves the second.
  const relinkedMetadata = join(out, "relinked-metadata.tar");
  {
    const good = await imageSource(t);
    const bad = join(out, "bad");
    await mkdir(bad);
    await symlink(HOST_SECRET, join(bad, "metadata.yaml"));
    await runCommand("tar", ["-cf", relinkedMetadata, "-C", good, "metadata.yaml", "templates", "rootfs"]);
    await runCommand("tar", ["-rf", relinkedMetadata, "-C", bad, "metadata.yaml"]);
  }

  const cases: [string, string[], RegExp][] = [
    ["unified, templates/leak.tpl -> /etc/shadow", [await tarball("linked.tar.gz", linkedTemplate)], /"templates\/leak\.tpl" is a symlink.*only regular files and directories/],
    ["split, templates/leak.tpl -> /etc/shadow", [await tarball("linked-meta.tar.gz", linkedTemplate, ["metadata.yaml", "templates"]), await tarball("rootfs.tar.gz", join(linkedTemplate, "rootfs"), ["."])], /"templates\/leak\.tpl" is a symlink/],
    ["unified, templates -> /etc", [await tarball("linked-dir.tar.gz", linkedDir)], /"templates" is a symlink.*must be a directory/],
    ["unified, metadata.yaml replaced by a symlink", [relinkedMetadata], /"metadata\.yaml" is a symlink.*must be a regular file/],
  ];
  let n = 0;
  for (const [what, files, error] of cases) {
    const r = await d.lxc(["image", "import", ...files, "--alias", `i${n}`], { allowFail: true });
    if (r.code === 0) {
      // Accepted: carry the attack through, to say what it gave.
      await d.lxc(["init", `i${n}`, `c${n}`]);
      const started = await d.lxc(["start", `c${n}`], { allowFail: true, timeoutMs: 30_000 });
      const got = await leaked(d, `c${n}`);
      assert.fail(`${what}: imported; start exited ${started.code} (${started.stderr.trim()}); the host's ${HOST_SECRET} ${got === shadow ? "was copied into" : "did not reach"} the container`);
    }
    assert.match(r.stderr, /Unsafe image:/, `${what}: ${r.stderr}`);
    assert.match(r.stderr, error, `${what}: ${r.stderr}`);
    n++;
  }
});

test("at start, templates and metadata.yaml are read without following links, from an image an older Lodge let in", async (t) => {
  const d = await TestDaemon.start(t);
  const shadow = await readFile(HOST_SECRET, "utf8");
  const file = join(await scratchDir(t, "lodge-tpl-out-"), "good.tar.gz");
  await runCommand("tar", ["-czf", file, "-C", await imageSource(t), "--numeric-owner", "metadata.yaml", "templates", "rootfs"]);
  await d.lxc(["image", "import", file, "--alias", "good"]);
  await d.lxc(["init", "good", "c1"]);
  const vol = volume(d, "c1");
  const hostDir = await scratchDir(t, "lodge-tpl-host-");
  await writeFile(join(hostDir, "leak.tpl"), "a host file\n");
  await writeFile(join(hostDir, "metadata.yaml"), LEAK_METADATA);
  const original = { tpl: await readFile(join(vol, "templates/leak.tpl")), meta: await readFile(join(vol, "metadata.yaml")) };
  const restore = async () => {
    await rm(join(vol, "templates"), { recursive: true, force: true });
    await mkdir(join(vol, "templates"));
    await writeFile(join(vol, "templates/hostname.tpl"), "{{ instance.name }}\n");
    await writeFile(join(vol, "templates/leak.tpl"), original.tpl);
    await rm(join(vol, "metadata.yaml"), { force: true });
    await writeFile(join(vol, "metadata.yaml"), original.meta);
  };

  // What an image imported before the import check could have left in the volume.
  const cases: [string, () => Promise<void>, RegExp][] = [
    ["templates/leak.tpl -> /etc/shadow", () => relink(join(vol, "templates/leak.tpl"), HOST_SECRET), /template "leak\.tpl" .*symbolic link/],
    ["templates -> a host directory", () => relink(join(vol, "templates"), hostDir), /template "\w+\.tpl" .*templates\/\w+\.tpl goes through a symbolic link/],
    ["metadata.yaml -> a host file", () => relink(join(vol, "metadata.yaml"), join(hostDir, "metadata.yaml")), /metadata\.yaml .*symbolic link/],
    ["metadata.yaml -> /etc/shadow", () => relink(join(vol, "metadata.yaml"), HOST_SECRET), /metadata\.yaml .*symbolic link/],
    ["templates/leak.tpl a FIFO", () => refifo(join(vol, "templates/leak.tpl")), /template "leak\.tpl" .*not a regular file/],
    ["metadata.yaml a FIFO", () => refifo(join(vol, "metadata.yaml")), /metadata\.yaml .*not a regular file/],
    ["templates/leak.tpl of 8 MiB", () => writeFile(join(vol, "templates/leak.tpl"), Buffer.alloc(8 << 20, 0x61)), /template "leak\.tpl" .*larger than/],
    [
      "a template name climbing out of templates/",
      () => writeFile(join(vol, "metadata.yaml"), LEAK_METADATA.replace("template: leak.tpl", "template: ../../../../../../../etc/shadow")),
      /"\.\.\/\.\.\/.*etc\/shadow" must stay inside templates\//,
    ],
  ];
  for (const [what, tamper, error] of cases) {
    await tamper();
    const r = await d.lxc(["start", "c1"], { allowFail: true, timeoutMs: 30_000 });
    const got = await leaked(d, "c1");
    assert.notEqual(r.code, 0, `${what}: start should be refused; /etc/leak ${got === shadow ? `holds the host's ${HOST_SECRET}` : `is ${JSON.stringify(got)}`}`);
    assert.notEqual(r.code, 128, `${what}: start hung (killed after 30 s)`);
    assert.match(r.stderr, error, `${what}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /root:/, `${what}: no host file's content in the error`);
    assert.equal(got, undefined, `${what}: nothing was written`);
    await restore();
  }

  // Untampered, the same instance starts and its template is rendered: the cases above were
  // refused for what was done to them, not for something else.
  await d.lxc(["start", "c1"], { timeoutMs: 30_000 });
  assert.equal(await leaked(d, "c1"), "rendered for c1\n");
  await d.lxc(["stop", "c1", "--force"]);
});

test("a FIFO or device node at a template's target in the rootfs does not hang start nor get written", async (t) => {
  const d = await TestDaemon.start(t);
  const src = await imageSource(t, async (s) => {
    await rm(join(s, "rootfs/etc/hostname"), { force: true });
    await runCommand("mkfifo", [join(s, "rootfs/etc/hostname")]);
  });
  const file = join(await scratchDir(t, "lodge-tpl-out-"), "fifo.tar.gz");
  await runCommand("tar", ["-czf", file, "-C", src, "--numeric-owner", "metadata.yaml", "templates", "rootfs"]);
  await d.lxc(["image", "import", file, "--alias", "fifo"]);
  await d.lxc(["init", "fifo", "c1"]);
  const target = join(volume(d, "c1"), "rootfs/etc/hostname");
  assert.ok((await lstat(target)).isFIFO(), "the image's FIFO is in the instance's rootfs");

  const fifo = await d.lxc(["start", "c1"], { allowFail: true, timeoutMs: 30_000 });
  assert.notEqual(fifo.code, 128, "start hung on the FIFO (killed after 30 s)");
  assert.notEqual(fifo.code, 0, "start should be refused");
  assert.match(fifo.stderr, /"\/etc\/hostname".*not a regular file/, fifo.stderr);

  // A device node there (/dev/null's numbers): written to, it would reach the host's device.
  await rm(target);
  await runCommand("mknod", ["-m", "0666", target, "c", "1", "3"]);
  const dev = await d.lxc(["start", "c1"], { allowFail: true, timeoutMs: 30_000 });
  assert.notEqual(dev.code, 0, "start should be refused");
  assert.match(dev.stderr, /"\/etc\/hostname".*not a regular file/, dev.stderr);

  // A regular file (or none) there is written as usual.
  await rm(target);
  await d.lxc(["start", "c1"], { timeoutMs: 30_000 });
  assert.equal(await readFile(target, "utf8"), "c1\n");
  await d.lxc(["stop", "c1", "--force"]);
});

/** Replaces path with a symlink to target. */
async function relink(path: string, target: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  await symlink(target, path);
}

/** Replaces path with a FIFO nobody opens. */
async function refifo(path: string): Promise<void> {
  await rm(path, { force: true });
  await runCommand("mkfifo", [path]);
}
