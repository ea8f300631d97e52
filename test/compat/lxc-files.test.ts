import test from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// `lxc file` (Debian's lxd-client 5.0.2) against lodged: push, pull, recursive, delete, edit,
// running and stopped instances, and the file API's confinement to the container.

async function daemonWithContainer(t: test.TestContext, name = "c1") {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", name]);
  const local = await mkdtemp(join(tmpdir(), "lodge-files-"));
  t.after(() => rm(local, { recursive: true, force: true }));
  return { d, local };
}

const statInside = async (d: TestDaemon, c: string, path: string) =>
  (await d.lxc(["exec", c, "--", "stat", "-c", "%a %u %g", path])).stdout.trim();

/** One raw request on the daemon's socket: status, headers and the body's bytes. */
function rawRequest(d: TestDaemon, method: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: d.socket, method, path, headers: { host: "lodge" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("push and pull round trip of a text and a binary file with mode and owner", async (t) => {
  const { d, local } = await daemonWithContainer(t);
  const text = join(local, "notes.txt");
  await writeFile(text, "first line\nsecond line, ünïcödé\n");
  await d.lxc(["file", "push", text, "c1/root/notes.txt", "--mode", "0640", "--uid", "1000", "--gid", "1000"]);
  assert.equal(await statInside(d, "c1", "/root/notes.txt"), "640 1000 1000");
  assert.equal((await d.lxc(["file", "pull", "c1/root/notes.txt", "-"])).stdout, "first line\nsecond line, ünïcödé\n");

  // About a MiB holding every byte value, in an order that is not a simple ramp.
  const bin = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1024 * 1024)]);
  const binFile = join(local, "blob.bin");
  await writeFile(binFile, bin);
  await d.lxc(["file", "push", binFile, "c1/tmp/blob.bin", "--mode", "0640", "--uid", "1000", "--gid", "1000"]);
  assert.equal(await statInside(d, "c1", "/tmp/blob.bin"), "640 1000 1000");
  const back = join(local, "back.bin");
  await d.lxc(["file", "pull", "c1/tmp/blob.bin", back]);
  assert.ok((await readFile(back)).equals(bin), "the pulled bytes are the pushed bytes");
  const sizeInside = (await d.lxc(["exec", "c1", "--", "stat", "-c", "%s", "/tmp/blob.bin"])).stdout.trim();
  assert.equal(Number(sizeInside), bin.length);

  // GET answers the file's owner and mode in LXD's headers.
  const r = await rawRequest(d, "GET", "/1.0/instances/c1/files?path=/root/notes.txt");
  assert.equal(r.status, 200);
  assert.equal(r.headers["x-lxd-uid"], "1000");
  assert.equal(r.headers["x-lxd-gid"], "1000");
  assert.equal(r.headers["x-lxd-mode"], "0640");
  assert.equal(r.headers["x-lxd-type"], "file");
});

test("recursive push and pull of a directory tree with a symlink", async (t) => {
  const { d, local } = await daemonWithContainer(t);
  const tree = join(local, "tree");
  await mkdir(join(tree, "sub", "deeper"), { recursive: true });
  await writeFile(join(tree, "a.txt"), "alpha\n");
  await writeFile(join(tree, "sub", "b.txt"), "beta\n");
  await writeFile(join(tree, "sub", "deeper", "c.txt"), "gamma\n");
  await chmod(join(tree, "sub", "b.txt"), 0o600);
  await symlink("a.txt", join(tree, "link"));

  await d.lxc(["file", "push", "-r", tree, "c1/root/"]);
  const listing = (await d.lxc(["exec", "c1", "--", "find", "/root/tree"])).stdout.trim().split("\n").sort();
  assert.deepEqual(listing, [
    "/root/tree",
    "/root/tree/a.txt",
    "/root/tree/link",
    "/root/tree/sub",
    "/root/tree/sub/b.txt",
    "/root/tree/sub/deeper",
    "/root/tree/sub/deeper/c.txt",
  ]);
  assert.equal((await d.lxc(["exec", "c1", "--", "readlink", "/root/tree/link"])).stdout.trim(), "a.txt");
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", "/root/tree/link"])).stdout, "alpha\n");
  assert.equal((await d.lxc(["exec", "c1", "--", "stat", "-c", "%a", "/root/tree/sub/b.txt"])).stdout.trim(), "600");

  const out = join(local, "pulled");
  await mkdir(out);
  await d.lxc(["file", "pull", "-r", "c1/root/tree", out]);
  assert.equal(await readFile(join(out, "tree", "a.txt"), "utf8"), "alpha\n");
  assert.equal(await readFile(join(out, "tree", "sub", "deeper", "c.txt"), "utf8"), "gamma\n");
  assert.ok((await lstat(join(out, "tree", "link"))).isSymbolicLink(), "the symlink comes back as a symlink");
  // LXD answers a symlink's target made absolute against its directory.
  assert.equal(await readlink(join(out, "tree", "link")), "/root/tree/a.txt");

  // A directory GET lists its entries, with the directory's own headers.
  const r = await rawRequest(d, "GET", "/1.0/instances/c1/files?path=/root/tree");
  assert.equal(r.headers["x-lxd-type"], "directory");
  assert.deepEqual((JSON.parse(r.body.toString()) as { metadata: string[] }).metadata.sort(), ["a.txt", "link", "sub"]);
});

test("delete, and edit through $EDITOR", async (t) => {
  const { d, local } = await daemonWithContainer(t);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo doomed > /tmp/gone; echo original > /tmp/edit.txt"]);
  await d.lxc(["file", "delete", "c1/tmp/gone"]);
  const gone = await d.lxc(["exec", "c1", "--", "test", "-e", "/tmp/gone"], { allowFail: true });
  assert.equal(gone.code, 1, "the file is gone");
  const again = await d.lxc(["file", "delete", "c1/tmp/gone"], { allowFail: true });
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /\/tmp\/gone.*not found|not found.*\/tmp\/gone/i);

  // lxc file edit runs $EDITOR only on a terminal (else it pushes stdin): give it one.
  const editor = join(local, "editor.sh");
  await writeFile(editor, '#!/bin/sh\nsed -i "s/original/edited by the editor/" "$1"\n', { mode: 0o755 });
  await runCommand("script", ["--quiet", "--return", "--command", "lxc file edit c1/tmp/edit.txt", "/dev/null"], {
    env: { EDITOR: editor, VISUAL: editor, LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") },
  });
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", "/tmp/edit.txt"])).stdout, "edited by the editor\n");

  // And without a terminal, edit replaces the file with stdin (a file: the client opens /dev/stdin).
  const input = join(local, "input.txt");
  await writeFile(input, "from stdin\n");
  await runCommand("sh", ["-c", 'exec lxc file edit c1/tmp/edit.txt < "$1"', "sh", input], {
    env: { LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") },
  });
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", "/tmp/edit.txt"])).stdout, "from stdin\n");
});

test("a stopped instance: pull, push with owner, seen inside after start", async (t) => {
  const { d, local } = await daemonWithContainer(t);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo made-while-running > /root/kept; chown 1000:1000 /root/kept"]);
  await d.lxc(["stop", "c1"]);
  assert.equal((await d.lxc(["file", "pull", "c1/etc/hostname", "-"])).stdout, "c1\n");
  assert.equal((await d.lxc(["file", "pull", "c1/root/kept", "-"])).stdout, "made-while-running\n");
  const r = await rawRequest(d, "GET", "/1.0/instances/c1/files?path=/root/kept");
  assert.equal(r.headers["x-lxd-uid"], "1000", "the container's ids, not the host's");
  const f = join(local, "offline.txt");
  await writeFile(f, "pushed while stopped\n");
  await d.lxc(["file", "push", f, "c1/root/offline.txt", "--mode", "0604", "--uid", "1000", "--gid", "1000"]);
  await d.lxc(["file", "push", "-r", local, "c1/root/"]);
  await d.lxc(["start", "c1"]);
  assert.equal(await statInside(d, "c1", "/root/offline.txt"), "604 1000 1000");
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", "/root/offline.txt"])).stdout, "pushed while stopped\n");
  const dirName = local.split("/").pop()!;
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", `/root/${dirName}/offline.txt`])).stdout, "pushed while stopped\n");
});

test("symlinks made inside the container never reach the host", async (t) => {
  const { d, local } = await daemonWithContainer(t);
  const mark = `container-shadow-${randomBytes(6).toString("hex")}`;
  await d.lxc(["exec", "c1", "--", "sh", "-c", `echo ${mark} > /etc/shadow && ln -s /etc/shadow /tmp/x && ln -s ../../../../../../etc/shadow /tmp/rel`]);
  // Compare without printing: a failure must not put the host's shadow file in a test log.
  const pulled = (await d.lxc(["file", "pull", "c1/tmp/x", "-"])).stdout;
  assert.ok(pulled === `${mark}\n`, "the absolute link gives the container's /etc/shadow");
  const rel = (await d.lxc(["file", "pull", "c1/tmp/rel", "-"])).stdout;
  assert.ok(rel === `${mark}\n`, "a relative link climbing out stops at the container's root");
  const dots = await rawRequest(d, "GET", "/1.0/instances/c1/files?path=" + encodeURIComponent("/../../../etc/shadow"));
  assert.ok(dots.body.toString() === `${mark}\n`, "`..` in the path stops at the container's root");

  const hostMarker = `/etc/lodge-host-marker-${randomBytes(6).toString("hex")}`;
  t.after(() => rm(hostMarker, { force: true }));
  await d.lxc(["exec", "c1", "--", "ln", "-s", hostMarker, "/tmp/y"]);
  const src = join(local, "payload");
  await writeFile(src, "written through a symlink\n");
  await d.lxc(["file", "push", src, "c1/tmp/y"]);
  assert.equal(existsSync(hostMarker), false, "nothing is created in the host's /etc");
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", hostMarker])).stdout, "written through a symlink\n");

  // The same holds for a stopped container, whose rootfs is reached from the host.
  await d.lxc(["stop", "c1"]);
  const offline = (await d.lxc(["file", "pull", "c1/tmp/x", "-"])).stdout;
  assert.ok(offline === `${mark}\n`, "stopped: the container's /etc/shadow");
  await writeFile(src, "written while stopped\n");
  await d.lxc(["file", "push", src, "c1/tmp/y"]);
  assert.equal(existsSync(hostMarker), false, "stopped: nothing is created in the host's /etc");
  await d.lxc(["start", "c1"]);
  assert.equal((await d.lxc(["exec", "c1", "--", "cat", hostMarker])).stdout, "written while stopped\n");
});

test("bad paths give clear errors", async (t) => {
  const { d, local } = await daemonWithContainer(t);
  const src = join(local, "f");
  await writeFile(src, "x\n");
  const noParent = await d.lxc(["file", "push", src, "c1/no/such/dir/f"], { allowFail: true });
  assert.notEqual(noParent.code, 0);
  assert.match(noParent.stderr, /\/no\/such\/dir\/f.*not found/i);
  const missing = await d.lxc(["file", "pull", "c1/no/such/file", "-"], { allowFail: true });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /\/no\/such\/file.*not found/i);
  const noInstance = await d.lxc(["file", "pull", "nope/etc/hostname", "-"], { allowFail: true });
  assert.match(noInstance.stderr, /Instance "nope" not found|not found/);

  const empty = await rawRequest(d, "GET", "/1.0/instances/c1/files?path=");
  assert.equal(empty.status, 400);
  assert.match(JSON.parse(empty.body.toString()).error, /Missing path argument/);
  // LXD's rule: a relative path is taken from the container's root.
  const relative = await rawRequest(d, "GET", "/1.0/instances/c1/files?path=etc/hostname");
  assert.equal(relative.status, 200);
  assert.equal(relative.body.toString(), "c1\n");
  const onFile = await d.lxc(["file", "push", src, "c1/etc/hostname/below"], { allowFail: true });
  assert.notEqual(onFile.code, 0);
  assert.match(onFile.stderr, /\/etc\/hostname\/below/);
});
