import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import type { Event } from "../../src/api/event.js";
import { EventHub } from "../../src/core/events.js";
import { ImageStore } from "../../src/images/store.js";
import type { TransferProgress } from "../../src/images/progress.js";
import { SqliteStore } from "../../src/state/sqlite.js";
import { buildBusyboxImages, scratchDir } from "../helpers/images.js";

async function openStore(t: TestContext) {
  const dir = await scratchDir(t, "lodge-store-");
  const docs = SqliteStore.open(join(dir, "lodge.db"));
  t.after(() => docs.close());
  const events = new EventHub();
  const seen: Event[] = [];
  events.subscribe({ types: new Set(["lifecycle"]), send: (e) => seen.push(e) });
  const images = new ImageStore({ dir, store: docs, events });
  await images.init();
  return { dir, images, seen };
}

test("ImageStore: import from streams, unpack once, delete removes files and cache", async (t) => {
  const { images, seen } = await openStore(t);
  const img = await buildBusyboxImages(t);
  const progress: TransferProgress[] = [];

  const unified = await images.importFromStreams({
    project: "default",
    metadata: createReadStream(img.unified),
    filename: "busybox.tar.gz",
    aliases: [{ name: "bb", description: "" }],
    onProgress: (p) => progress.push(p),
  });
  assert.equal(unified.fingerprint, img.unifiedFingerprint);
  assert.deepEqual(unified.aliases, [{ name: "bb", description: "" }]);
  assert.ok(progress.length >= 1 && progress.at(-1)!.bytes === (await stat(img.unified)).size);
  assert.deepEqual(
    seen.map((e) => (e.metadata as { action: string }).action),
    ["image-created", "image-alias-created"],
  );

  const split = await images.addImage({ project: "default", metadataPath: img.metadata, rootfsPath: img.squashfs });
  assert.equal(split.fingerprint, img.splitFingerprint);
  assert.equal(split.type, "container");

  // Unpacked once; concurrent callers share the work and get the same tree.
  const [a, b] = await Promise.all([images.ensureUnpacked(unified.fingerprint), images.ensureUnpacked(unified.fingerprint)]);
  assert.equal(a, b);
  assert.equal(await readFile(join(a, "rootfs/bin/busybox")).then((x) => x.length), (await stat("/bin/busybox")).size);
  assert.match(await readFile(join(a, "metadata.yaml"), "utf8"), /architecture: x86_64/);
  const s = await images.ensureUnpacked(split.fingerprint);
  assert.ok((await stat(join(s, "rootfs/bin/busybox"))).isFile());
  assert.ok((await stat(join(s, "templates/hostname.tpl"))).isFile());
  assert.deepEqual(await readdir(join(s, "rootfs/dev")), [], "device nodes are not unpacked");

  await images.delete("default", unified.fingerprint.slice(0, 8));
  await images.delete("default", split.fingerprint);
  assert.deepEqual(await readdir(images.imagesDir), []);
  assert.deepEqual(await images.aliases.list("default"), []);
});

test("ImageStore: the same image in two projects shares files until the last one goes", async (t) => {
  const { images } = await openStore(t);
  const img = await buildBusyboxImages(t);
  await images.addImage({ project: "default", metadataPath: img.unified });
  await images.addImage({ project: "other", metadataPath: img.unified });
  await assert.rejects(images.addImage({ project: "other", metadataPath: img.unified }), /already exists/);
  await images.delete("default", img.unifiedFingerprint);
  assert.deepEqual(await readdir(images.imagesDir), [img.unifiedFingerprint]);
  await images.delete("other", img.unifiedFingerprint);
  assert.deepEqual(await readdir(images.imagesDir), []);
});

test("ImageStore: a failed import leaves no file, record or staging directory; aliases are atomic", async (t) => {
  const { images } = await openStore(t);
  const img = await buildBusyboxImages(t);
  await images.addImage({ project: "default", metadataPath: img.metadata, rootfsPath: img.squashfs, aliases: [{ name: "taken", description: "" }] });
  // The alias is taken: the whole import is refused, files included.
  await assert.rejects(
    images.addImage({ project: "default", metadataPath: img.unified, aliases: [{ name: "taken", description: "" }] }),
    /Alias "taken" already exists/,
  );
  await assert.rejects(images.addImage({ project: "default", metadataPath: img.unified, expectedFingerprint: "f".repeat(64) }), /mismatch/);
  await assert.rejects(images.addImage({ project: "default", metadataPath: img.squashfs }), /only valid as the rootfs of a split image/);
  assert.deepEqual((await readdir(images.imagesDir)).sort(), [img.splitFingerprint, `${img.splitFingerprint}.rootfs`].sort());
  assert.deepEqual((await images.list("default")).map((i) => i.fingerprint), [img.splitFingerprint]);
});
