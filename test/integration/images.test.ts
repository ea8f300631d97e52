import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import type { Event } from "../../src/api/event.js";
import type { Operation } from "../../src/api/operation.js";
import type { Image, ImageAliasEntry } from "../../src/images/types.js";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { buildBusyboxImages, buildRootfs, DEFAULT_METADATA, scratchDir, sha256Files, tar, writeMetadata } from "../helpers/images.js";

/** What the images directory holds (the store's own layout: <fp>, <fp>.rootfs, <fp>.unpacked). */
/**
 * A split image (its own metadata tarball, the given rootfs) whose fingerprint starts with
 * `prefix` (one hex digit): metadata tarballs with a counter in a property are made in turn
 * until one fits, 16 tries on average; the search always ends, whatever the run.
 */
async function imageStartingWith(t: TestContext, img: { squashfs: string }, prefix: string): Promise<{ metadata: string; fingerprint: string }> {
  const dir = await scratchDir(t);
  for (let n = 0; n < 2000; n++) {
    await writeMetadata(dir, DEFAULT_METADATA.replace("properties:\n", `properties:\n  nonce: "${n}"\n`));
    const metadata = join(dir, `meta-${n}.tar.xz`);
    await tar(dir, metadata, ["metadata.yaml", "templates"], "--xz");
    const fingerprint = await sha256Files(metadata, img.squashfs);
    if (fingerprint.startsWith(prefix)) return { metadata, fingerprint };
  }
  throw new Error(`no image fingerprint starting with ${prefix} in 2000 tries`);
}

async function imageFiles(d: TestDaemon): Promise<string[]> {
  return (await readdir(join(d.dir, "images"))).sort();
}

async function imageList(d: TestDaemon): Promise<Image[]> {
  return d.client.get<Image[]>("/1.0/images?recursion=1");
}

/** Asserts a refused import left nothing: no image, no file, no staging directory. */
async function assertNothingLeft(d: TestDaemon): Promise<void> {
  assert.deepEqual(await imageList(d), []);
  assert.deepEqual(await imageFiles(d), []);
}

test("lxc image import (unified and split), list, info, aliases, export round trip, delete", async (t) => {
  const d = await TestDaemon.start(t);
  const img = await buildBusyboxImages(t);
  const out = await scratchDir(t);

  // Unified tarball with an alias.
  const r1 = await d.lxc(["image", "import", img.unified, "--alias", "x"]);
  assert.match(r1.stdout, new RegExp(`Image imported with fingerprint: ${img.unifiedFingerprint}`));
  // Split: metadata tarball + SquashFS rootfs, with a property given on the command line.
  const r2 = await d.lxc(["image", "import", img.metadata, img.squashfs, "flavour=split"]);
  assert.match(r2.stdout, new RegExp(`Image imported with fingerprint: ${img.splitFingerprint}`));

  assert.deepEqual(await imageFiles(d), [img.unifiedFingerprint, img.splitFingerprint, `${img.splitFingerprint}.rootfs`].sort());

  const list = await d.lxc(["image", "list", "--format", "csv", "-c", "lfpdtsa"]);
  const rows = list.stdout.trim().split("\n").sort();
  assert.equal(rows.length, 2, list.stdout);
  assert.ok(rows.some((r) => r.startsWith(`x,${img.unifiedFingerprint.slice(0, 12)},no,Busybox test image,CONTAINER,`)), list.stdout);
  assert.ok(rows.some((r) => r.startsWith(`,${img.splitFingerprint.slice(0, 12)},no,Busybox test image,CONTAINER,`)), list.stdout);

  const info = await d.lxc(["image", "info", "x"]);
  assert.match(info.stdout, new RegExp(`Fingerprint: ${img.unifiedFingerprint}`));
  assert.match(info.stdout, /Architecture: x86_64/);
  assert.match(info.stdout, /Type: container/);
  assert.match(info.stdout, /os: busybox/);
  assert.match(info.stdout, /Expires: never/);
  assert.match(info.stdout, /Created: 2023\/11\/14/);

  const split = await d.client.get<Image>(`/1.0/images/${img.splitFingerprint.slice(0, 10)}`);
  assert.equal(split.fingerprint, img.splitFingerprint);
  assert.equal(split.properties.flavour, "split");
  assert.equal(split.filename, "busybox.squashfs");
  assert.equal(split.size, (await stat(img.metadata)).size + (await stat(img.squashfs)).size);

  // Aliases: create, rename, delete.
  await d.lxc(["image", "alias", "create", "y", img.splitFingerprint]);
  await d.lxc(["image", "alias", "rename", "y", "z"]);
  const aliases = await d.client.get<ImageAliasEntry[]>("/1.0/images/aliases?recursion=1");
  assert.deepEqual(
    aliases.map((a) => [a.name, a.target, a.type]).sort(),
    [
      ["x", img.unifiedFingerprint, "container"],
      ["z", img.splitFingerprint, "container"],
    ],
  );
  const aliasList = await d.lxc(["image", "alias", "list", "--format", "csv"]);
  assert.match(aliasList.stdout, /^z,/m);
  await d.lxc(["image", "alias", "delete", "z"]);
  const gone = await d.lxc(["image", "alias", "delete", "z"], { allowFail: true });
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /not found/i);

  // Export round trip: the exported files hash to the fingerprint.
  await d.lxc(["image", "export", "x", out]);
  const exported = join(out, `${img.unifiedFingerprint}.tar.gz`);
  assert.equal(await sha256Files(exported), img.unifiedFingerprint);
  const splitOut = join(out, "split");
  await mkdir(splitOut);
  await d.lxc(["image", "export", img.splitFingerprint, splitOut]);
  const names = (await readdir(splitOut)).sort();
  assert.deepEqual(names, [`${img.splitFingerprint}.squashfs`, `meta-${img.splitFingerprint}.tar.xz`]);
  assert.equal(
    await sha256Files(join(splitOut, `meta-${img.splitFingerprint}.tar.xz`), join(splitOut, `${img.splitFingerprint}.squashfs`)),
    img.splitFingerprint,
  );

  // Delete: records, aliases and files go.
  await d.lxc(["image", "delete", "x"]);
  await d.lxc(["image", "delete", img.splitFingerprint]);
  await assertNothingLeft(d);
  assert.deepEqual(await d.client.get("/1.0/images/aliases"), []);
});

/** Builds a unified tarball from a source dir prepared by `prepare`. */
async function customTarball(t: TestContext, name: string, prepare: (src: string) => Promise<string[]>): Promise<string> {
  const dir = await scratchDir(t);
  const src = join(dir, "src");
  await mkdir(src);
  const members = await prepare(src);
  const out = join(dir, name);
  await tar(src, out, members);
  return out;
}

test("corrupt and unsafe images are refused with a clear error and leave nothing behind", async (t) => {
  const d = await TestDaemon.start(t);
  const img = await buildBusyboxImages(t);
  const dir = await scratchDir(t);

  const truncated = join(dir, "truncated.tar.gz");
  const whole = await readFile(img.unified);
  await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));

  const noMetadata = await customTarball(t, "nometa.tar.gz", async (src) => {
    await buildRootfs(src);
    return ["rootfs"];
  });
  const badMetadata = await customTarball(t, "badmeta.tar.gz", async (src) => {
    await buildRootfs(src);
    await writeMetadata(src, "architecture: pdp11\ncreation_date: 1700000000\n");
    return ["metadata.yaml", "rootfs"];
  });
  const noDate = await customTarball(t, "nodate.tar.gz", async (src) => {
    await buildRootfs(src);
    await writeMetadata(src, "architecture: x86_64\n");
    return ["metadata.yaml", "rootfs"];
  });
  // A member whose stored name climbs out: GNU tar keeps "../../etc/passwd" with -P.
  const dotdot = join(dir, "dotdot.tar.gz");
  {
    const src = join(dir, "dotdot-src/a/b");
    await mkdir(src, { recursive: true });
    await buildRootfs(src);
    await writeMetadata(src);
    await runCommand("tar", ["-czPf", dotdot, "-C", src, "metadata.yaml", "rootfs", "../../../../../etc/passwd"]);
  }
  // A symlink to / followed by a file written through it.
  const escape = join(dir, "escape.tar.gz");
  {
    const a = join(dir, "esc-a");
    const b = join(dir, "esc-b");
    await mkdir(join(a, "rootfs"), { recursive: true });
    await writeMetadata(a);
    await symlink("/tmp", join(a, "rootfs/evil"));
    await mkdir(join(b, "rootfs/evil"), { recursive: true });
    await writeFile(join(b, "rootfs/evil/lodge-escape"), "pwned\n");
    const plain = join(dir, "escape.tar");
    await runCommand("tar", ["-cf", plain, "-C", a, "metadata.yaml", "templates", "rootfs"]);
    await runCommand("tar", ["-rf", plain, "-C", b, "rootfs/evil/lodge-escape"]);
    await runCommand("gzip", [plain]);
  }

  const cases: [string, string, RegExp][] = [
    ["truncated tarball", truncated, /truncated or corrupt/],
    ["metadata.yaml missing", noMetadata, /missing metadata\.yaml/],
    ["invalid metadata.yaml", badMetadata, /unknown architecture "pdp11"/],
    ["metadata.yaml without creation_date", noDate, /missing creation_date/],
    ["a ../../etc/passwd member", dotdot, /Unsafe image: .*"\.\.\/\.\.\/.*etc\/passwd" contains "\.\."/],
    ["a symlink-escape pair", escape, /Unsafe image: .*"rootfs\/evil\/lodge-escape" would be written through the symlink "rootfs\/evil"/],
  ];
  for (const [what, file, error] of cases) {
    const r = await d.lxc(["image", "import", file, "--alias", "bad"], { allowFail: true });
    assert.notEqual(r.code, 0, `${what}: lxc should fail`);
    assert.match(r.stderr, error, `${what}: ${r.stderr}`);
    await assertNothingLeft(d);
  }
  await assert.rejects(stat("/tmp/lodge-escape"), "nothing was written through the symlink");

  // Split image with a corrupt SquashFS rootfs.
  const badSquash = join(dir, "bad.squashfs");
  const sq = await readFile(img.squashfs);
  await writeFile(badSquash, sq.subarray(0, 4096));
  const r = await d.lxc(["image", "import", img.metadata, badSquash], { allowFail: true });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not a valid SquashFS/);
  await assertNothingLeft(d);

  // A wrong X-LXD-fingerprint (lxc only sends it in push mode, so the raw API is used).
  const op = await d.client.post<Operation>("/1.0/images", undefined, {
    stream: createReadStream(img.unified),
    headers: { "content-type": "application/octet-stream", "x-lxd-fingerprint": "0".repeat(64) },
  });
  await assert.rejects(d.client.wait(op), /fingerprint mismatch.*0{64} was announced/);
  await assertNothingLeft(d);

  // A good import still works afterwards.
  await d.lxc(["image", "import", img.unified]);
  assert.equal((await imageList(d)).length, 1);
});

test("the import operation's states and progress are broadcast on /1.0/events", async (t) => {
  const d = await TestDaemon.start(t);
  const img = await buildBusyboxImages(t);
  const seen: Operation[] = [];
  const waiters: (() => void)[] = [];
  const sub = await d.client.events((e: Event) => {
    seen.push(e.metadata as Operation);
    for (const w of waiters.splice(0)) w();
  }, { types: ["operation"] });
  t.after(() => sub.close());

  const upload = async (file: string) => {
    const op = await d.client.post<Operation>("/1.0/images", undefined, {
      stream: createReadStream(file),
      headers: { "content-type": "application/octet-stream", "x-lxd-filename": "busybox.tar.gz" },
    });
    await d.client.wait(op).catch(() => {});
    // Events are sent before /wait answers, but may still be on their way: wait for the final one.
    while (!seen.some((o) => o.id === op.id && o.status_code >= 200)) await new Promise<void>((r) => waiters.push(r));
    return seen.filter((o) => o.id === op.id);
  };

  const ok = await upload(img.unified);
  const states = ok.map((o) => o.status).filter((s, i, a) => a[i - 1] !== s);
  assert.deepEqual(states, ["Pending", "Running", "Success"], JSON.stringify(ok.map((o) => o.status)));
  const progress = ok.filter((o) => o.status === "Running" && o.metadata && Object.keys(o.metadata).some((k) => k.endsWith("_progress")));
  assert.ok(progress.length > 0, "at least one progress update");
  assert.match(String(progress[0]!.metadata!.upload_progress), /B \(.*\/s\)|Validating/);
  const last = ok.at(-1)!;
  assert.equal(last.metadata!.fingerprint, img.unifiedFingerprint);

  // A bad import ends in Failure with the reason.
  const dir = await scratchDir(t);
  const bad = join(dir, "bad.tar.gz");
  await writeFile(bad, (await readFile(img.unified)).subarray(0, 1000));
  const failed = await upload(bad);
  const fstates = failed.map((o) => o.status).filter((s, i, a) => a[i - 1] !== s);
  assert.deepEqual(fstates, ["Pending", "Running", "Failure"]);
  assert.match(failed.at(-1)!.err, /truncated or corrupt/);
  assert.deepEqual(await imageFiles(d), [img.unifiedFingerprint]);
});

test("image PUT/PATCH with ETag, prefix lookup, filter, alias PATCH, JSON source seam", async (t) => {
  const d = await TestDaemon.start(t);
  const img = await buildBusyboxImages(t, DEFAULT_METADATA);
  await d.lxc(["image", "import", img.unified, "--alias", "bb"]);
  await d.lxc(["image", "import", img.metadata, img.squashfs]);

  const path = `/1.0/images/${img.unifiedFingerprint}`;
  const r = await d.client.raw<Image>("GET", path);
  const etag = String(r.headers.etag).replace(/"/g, "");
  await d.client.patch(path, { properties: { extra: "1" } }, { headers: { "if-match": etag } });
  let got = await d.client.get<Image>(path);
  assert.equal(got.properties.extra, "1");
  assert.equal(got.properties.os, "busybox");
  // The old ETag no longer matches.
  await assert.rejects(d.client.put(path, { public: true, properties: {} }, { headers: { "if-match": etag } }), /ETag/);
  await d.client.put(path, { public: true, auto_update: false, properties: { only: "this" } });
  got = await d.client.get<Image>(path);
  assert.equal(got.public, true);
  assert.deepEqual(got.properties, { only: "this" });

  // Filter on a top-level field and on a property.
  const pub = await d.client.get<Image[]>(`/1.0/images?recursion=1&filter=${encodeURIComponent("public eq true")}`);
  assert.deepEqual(pub.map((i) => i.fingerprint), [img.unifiedFingerprint]);
  const byProp = await d.client.get<string[]>(`/1.0/images?filter=${encodeURIComponent("properties.os eq busybox")}`);
  assert.deepEqual(byProp, [`/1.0/images/${img.splitFingerprint}`]);

  // A prefix shared by two images is ambiguous; a unique one resolves. The shared prefix is
  // made, not hoped for: a third image whose fingerprint starts as the unified one's.
  const twin = await imageStartingWith(t, img, img.unifiedFingerprint[0]!);
  await d.lxc(["image", "import", twin.metadata, img.squashfs]);
  await assert.rejects(d.client.get(`/1.0/images/${img.unifiedFingerprint[0]}`), /More than one image matches/);
  assert.equal((await d.client.get<Image>(`/1.0/images/${twin.fingerprint.slice(0, 12)}`)).fingerprint, twin.fingerprint);
  assert.equal((await d.client.get<Image>(`/1.0/images/${img.unifiedFingerprint.slice(0, 12)}`)).fingerprint, img.unifiedFingerprint);
  await d.lxc(["image", "delete", twin.fingerprint]);
  await assert.rejects(d.client.get("/1.0/images/zzzz"), /not found/);

  // Alias PATCH retargets; PUT needs a target.
  await d.client.patch("/1.0/images/aliases/bb", { target: img.splitFingerprint.slice(0, 16), description: "moved" });
  const alias = await d.client.get<ImageAliasEntry>("/1.0/images/aliases/bb");
  assert.deepEqual(alias, { name: "bb", description: "moved", target: img.splitFingerprint, type: "container" });
  await assert.rejects(d.client.put("/1.0/images/aliases/bb", { description: "x" }), /target field is required/);

  // Publishing from an instance that does not exist fails, saying so (in its operation, as LXD).
  const publish = (await d.client.raw("POST", "/1.0/images", { source: { type: "instance", name: "c1" } })).body.metadata as Operation;
  await assert.rejects(d.client.wait(publish.id), /Instance "c1" not found|not found/);

  // Nothing but the image files (no staging or unpack leftovers).
  assert.deepEqual(await imageFiles(d), [img.unifiedFingerprint, img.splitFingerprint, `${img.splitFingerprint}.rootfs`].sort());
});
