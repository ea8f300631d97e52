/**
 * The file-access engine against a real unprivileged liblxc container: everything happens in
 * the container's view (its root, its symlinks, its ids), never the host's, whether the
 * container runs (namespaces of its init) or is stopped (its rootfs through its id map).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chown, lstat, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { test } from "node:test";
import { ApiError } from "../../src/api/errors.js";
import { InstanceFiles, type FileTarget } from "../../src/instances/files/fileio.js";
import { fileGetAnswer } from "../../src/instances/files/headers.js";
import { ID_RANGE, startUnprivilegedContainer, type TestContainer } from "../helpers/container.js";

const marker = `container-shadow-${randomBytes(6).toString("hex")}`;
const SHADOW = `root:${marker}:19000:0:99999:7:::\n`;
const PASSWD = "root:x:0:0:root:/root:/bin/sh\n";

/** 1 MiB holding every byte value, in an order that catches shifted or dropped chunks. */
function binaryPayload(): Buffer {
  const b = randomBytes(1024 * 1024);
  for (let i = 0; i < 256; i++) b[i] = i;
  for (let i = 0; i < 256; i++) b[b.length - 256 + i] = 255 - i;
  return b;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function readAll(files: InstanceFiles, p: string): Promise<Buffer> {
  return buffer(await files.read(p));
}

function rejectsWith(status: number, pathInMessage: string) {
  return (e: unknown) => {
    assert.ok(e instanceof ApiError, `expected an ApiError, got ${String(e)}`);
    assert.equal(e.status, status, e.message);
    assert.ok(e.message.includes(pathInMessage), `message names the path: ${e.message}`);
    return true;
  };
}

async function container(t: Parameters<typeof startUnprivilegedContainer>[0]): Promise<TestContainer> {
  return startUnprivilegedContainer(t, {
    prepare: async (rootfs) => {
      await writeFile(path.join(rootfs, "etc/shadow"), SHADOW, { mode: 0o640 });
    },
  });
}

/** Behaviour both modes share; `ct` is running or stopped, `files` addresses it accordingly. */
async function sharedChecks(t: { test: (name: string, fn: () => Promise<void>) => Promise<void> }, ct: TestContainer, files: InstanceFiles, tag: string) {
  const hostRoot = (p: string) => path.join(ct.rootfs, p);

  await t.test("a text file round-trips with owner and mode, in the container's ids", async () => {
    const p = `/root/hello-${tag}.txt`;
    await files.write(p, "hello from the host\n", { uid: 1000, gid: 1001, mode: 0o640 });
    assert.equal((await readAll(files, p)).toString(), "hello from the host\n");
    const st = await files.stat(p);
    assert.deepEqual([st.type, st.uid, st.gid, st.mode, st.size], ["file", 1000, 1001, 0o640, 20]);
    const host = await stat(hostRoot(p));
    assert.deepEqual([host.uid, host.gid], [ct.base.uid + 1000, ct.base.gid + 1001], "stored under the mapped host ids");
  });

  await t.test("a binary file of every byte value round-trips byte for byte, streamed both ways", async () => {
    const p = `/tmp/blob-${tag}.bin`;
    const data = binaryPayload();
    const chunks = Array.from({ length: 64 }, (_, i) => data.subarray(i * 16384, (i + 1) * 16384));
    await files.write(p, Readable.from(chunks), { mode: 0o600 });
    const back = await readAll(files, p);
    assert.equal(back.length, data.length);
    assert.equal(sha(back), sha(data));
    assert.ok(back.equals(data));
    const st = await files.stat(p);
    assert.deepEqual([st.uid, st.gid, st.mode, st.size], [0, 0, 0o600, data.length]);
  });

  await t.test("stat shows the container's ids (0/0), not the host's", async () => {
    const root = await files.stat("/");
    assert.equal(root.type, "directory");
    assert.deepEqual([root.uid, root.gid], [0, 0]);
    assert.ok(root.entries?.includes("etc") && root.entries.includes("bin"), `entries: ${root.entries}`);
    const shadow = await files.stat("/etc/shadow");
    assert.deepEqual([shadow.type, shadow.uid, shadow.gid, shadow.mode], ["file", 0, 0, 0o640]);
    assert.equal((await stat(hostRoot("etc/shadow"))).uid, ct.base.uid, "on the host it is the shifted id");
  });

  await t.test("an existing file keeps its owner and mode when overwritten; append adds", async () => {
    const p = `/root/keep-${tag}`;
    await files.write(p, "one\n", { uid: 7, gid: 8, mode: 0o604 });
    await files.write(p, "two\n", { uid: 0, gid: 0, mode: 0o777 });
    await files.write(p, "three\n", { append: true });
    assert.equal((await readAll(files, p)).toString(), "two\nthree\n");
    const st = await files.stat(p);
    assert.deepEqual([st.uid, st.gid, st.mode], [7, 8, 0o604]);
    await assert.rejects(files.write(`/root/absent-${tag}`, "x", { append: true }), rejectsWith(404, `/root/absent-${tag}`));
  });

  await t.test("mkdir, symlink and delete behave as LXD's", async () => {
    const d = `/srv-${tag}`;
    await files.mkdir(d, { uid: 5, gid: 6, mode: 0o700 });
    await files.mkdir(d, { mode: 0o755 }); // exists: success, unchanged
    let st = await files.stat(d);
    assert.deepEqual([st.type, st.uid, st.gid, st.mode, st.entries], ["directory", 5, 6, 0o700, []]);
    await files.mkdir(`${d}/default`);
    assert.equal((await files.stat(`${d}/default`)).mode, 0o750, "LXD's default directory mode");
    await assert.rejects(files.mkdir(`/no/such/parent-${tag}`), rejectsWith(404, `/no/such/parent-${tag}`));

    await files.symlink("/etc/passwd", `${d}/lnk`);
    await files.symlink("/etc/passwd", `${d}/lnk`); // same target: success
    st = await files.stat(`${d}/lnk`);
    assert.deepEqual([st.type, st.target], ["symlink", "/etc/passwd"]);
    const answer = fileGetAnswer(`${d}/lnk`, st);
    assert.equal(answer.kind, "symlink");
    assert.equal(answer.kind === "symlink" && answer.body.toString(), "/etc/passwd");
    assert.equal((await readAll(files, `${d}/lnk`)).toString(), PASSWD, "read follows the link inside");
    await assert.rejects(files.symlink("/elsewhere", `${d}/lnk`), rejectsWith(409, `${d}/lnk`));

    assert.deepEqual((await files.stat(d)).entries, ["default", "lnk"]);
    await assert.rejects(files.delete(d), rejectsWith(400, d), "a non-empty directory stays");
    await files.delete(`${d}/lnk`);
    assert.equal((await files.stat("/etc/passwd")).type, "file", "deleting a symlink leaves its target");
    await files.delete(`${d}/default`);
    await files.delete(d);
    await assert.rejects(files.stat(d), rejectsWith(404, d));
    await assert.rejects(files.delete(d), rejectsWith(404, d));
  });

  await t.test("../ paths resolve inside the container root", async () => {
    assert.equal((await readAll(files, "../../../../etc/passwd")).toString(), PASSWD);
    assert.equal((await readAll(files, "/tmp/../../../../../etc/shadow")).toString(), SHADOW);
    await files.write(`/../../../../tmp/dotdot-${tag}`, "inside");
    assert.equal(await readFile(hostRoot(`tmp/dotdot-${tag}`), "utf8"), "inside");
  });

  await t.test("a file whose owner the container does not map is out of its root's reach: 403", async () => {
    const p = `root/host-owned-${tag}`;
    await writeFile(hostRoot(p), "host secret\n", { mode: 0o600 });
    await chown(hostRoot(p), 0, 0); // host root: unmapped in the container
    const st = await files.stat(`/${p}`);
    assert.equal(st.uid, 65534, "an unmapped owner shows as the overflow id");
    await assert.rejects(files.read(`/${p}`), rejectsWith(403, `/${p}`));
    await assert.rejects(files.write(`/${p}`, "x"), rejectsWith(403, `/${p}`));
    assert.equal(await readFile(hostRoot(p), "utf8"), "host secret\n");
  });

  await t.test("errors name the path and map to 404 and 400", async () => {
    await assert.rejects(files.read(`/nope-${tag}`), rejectsWith(404, `/nope-${tag}`));
    await assert.rejects(files.read("/etc"), rejectsWith(400, "/etc"));
    await assert.rejects(files.stat(`/etc/passwd/under-a-file`), rejectsWith(404, "/etc/passwd/under-a-file"));
  });
}

test("running unprivileged container: files are read and written in its namespaces", async (t) => {
  const ct = await container(t);
  if (ct.base.source === "fallback") t.diagnostic(`no root range in /etc/subuid: container ids map from host ${ct.base.uid}`);
  const files = new InstanceFiles({ pid: ct.pid, instance: ct.name });

  // The container really is unprivileged: its root is the base on the host.
  const uidMap = (await ct.sh("cat /proc/self/uid_map")).stdout.trim().split(/\s+/).map(Number);
  assert.deepEqual(uidMap, [0, ct.base.uid, ID_RANGE]);

  await sharedChecks(t, ct, files, "run");

  await t.test("a symlink to /etc/shadow made inside reads the container's shadow, never the host's", async () => {
    await ct.sh("ln -s /etc/shadow /tmp/x");
    const st = await files.stat("/tmp/x");
    assert.deepEqual([st.type, st.target], ["symlink", "/etc/shadow"]);
    const got = (await readAll(files, "/tmp/x")).toString();
    assert.equal(got, SHADOW);
    assert.ok(got.includes(marker));
    assert.notEqual(got, await readFile("/etc/shadow", "utf8").catch(() => ""));
    // A relative link climbing past the root stops at the container's root.
    await ct.sh("ln -s ../../../../../../../etc /tmp/up");
    assert.equal((await readAll(files, "/tmp/up/shadow")).toString(), SHADOW);
  });

  await t.test("a write through a symlink pointing outside lands inside the container", async () => {
    const name = `host-marker-${randomBytes(6).toString("hex")}`;
    assert.equal(existsSync(`/etc/${name}`), false);
    await ct.sh(`ln -s /etc/${name} /tmp/y`);
    await files.write("/tmp/y", "pushed through a link\n", { mode: 0o644 });
    assert.equal(existsSync(`/etc/${name}`), false, "nothing appears on the host");
    assert.equal((await ct.sh(`cat /etc/${name}`)).stdout, "pushed through a link\n");
    const inRootfs = await lstat(path.join(ct.rootfs, "etc", name));
    assert.deepEqual([inRootfs.isFile(), inRootfs.uid, inRootfs.gid], [true, ct.base.uid, ct.base.gid]);
    assert.equal((await lstat(path.join(ct.rootfs, "tmp/y"))).isSymbolicLink(), true, "the link itself is untouched");
  });

  await t.test("the container sees what the engine wrote, with its ids", async () => {
    await files.write("/root/seen", "seen\n", { uid: 1000, gid: 1000, mode: 0o640 });
    const r = await ct.sh("/bin/busybox stat -c '%u %g %a' /root/seen && cat /root/seen");
    assert.equal(r.stdout, "1000 1000 640\nseen\n");
  });

  await t.test("a target whose init is gone cannot be entered: 500 naming the instance", async () => {
    const gone = new InstanceFiles({ pid: 0x3ffffff0, instance: ct.name });
    await assert.rejects(gone.stat("/"), (e: unknown) => e instanceof ApiError && e.status === 500 && e.message.includes(ct.name));
  });
});

test("stopped unprivileged container: the rootfs through its id map gives the same view", async (t) => {
  const ct = await container(t);
  await ct.sh("ln -s /etc/shadow /tmp/x && ln -s /etc/stopped-marker /tmp/y");
  await ct.stop();
  const map = [{ nsid: 0, hostid: ct.base.uid, range: ID_RANGE }];
  const gmap = [{ nsid: 0, hostid: ct.base.gid, range: ID_RANGE }];
  const target: FileTarget = { rootfs: ct.rootfs, uidmap: map, gidmap: gmap, instance: ct.name };
  const files = new InstanceFiles(target);

  await sharedChecks(t, ct, files, "stopped");

  await t.test("symlinks made inside resolve inside the rootfs", async () => {
    assert.equal((await readAll(files, "/tmp/x")).toString(), SHADOW);
    assert.equal(existsSync("/etc/stopped-marker"), false);
    await files.write("/tmp/y", "stopped write\n");
    assert.equal(existsSync("/etc/stopped-marker"), false, "nothing appears on the host");
    assert.equal(await readFile(path.join(ct.rootfs, "etc/stopped-marker"), "utf8"), "stopped write\n");
  });

  await t.test("without a map (privileged or unshifted rootfs) ids are the stored ones", async () => {
    const raw = new InstanceFiles({ rootfs: ct.rootfs });
    const st = await raw.stat("/etc/shadow");
    assert.deepEqual([st.uid, st.gid], [ct.base.uid, ct.base.gid]);
    assert.equal((await readAll(raw, "/tmp/x")).toString(), SHADOW, "still confined to the rootfs");
  });
});
