import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { Event } from "../../src/api/event.js";
import type { Operation } from "../../src/api/operation.js";
import type { Image, ImageAliasEntry } from "../../src/images/types.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { inProcessDaemon, runCommand, TestDaemon } from "../helpers/daemon.js";
import { buildBusyboxImages, DEFAULT_METADATA, scratchDir, tar } from "../helpers/images.js";
import { selfSignedCert, SimpleStreamsServer, type ProductSpec } from "../helpers/simplestreams.js";

const BUSYBOX: ProductSpec = { os: "busybox", release: "1", arch: "amd64", variant: "default", aliases: ["busybox/1", "busybox"] };

async function imageFiles(d: TestDaemon): Promise<string[]> {
  return (await readdir(join(d.dir, "images"))).sort();
}

function images(d: TestDaemon): Promise<Image[]> {
  return d.client.get<Image[]>("/1.0/images?recursion=1");
}

/** POST /1.0/images with a JSON source and wait for the operation; returns the final operation. */
async function pull(d: TestDaemon, body: unknown): Promise<Operation> {
  const op = await d.client.post<Operation>("/1.0/images", body);
  return d.client.wait(op);
}

/** A second version of the busybox image: other metadata, so another fingerprint. */
const NEWER_METADATA = DEFAULT_METADATA.replace("creation_date: 1700000000", "creation_date: 1700100000");

test("simplestreams over https through the real lxc client: image copy by alias, progress, fingerprint, properties", async (t) => {
  const pki = await selfSignedCert(await scratchDir(t, "lodge-pki-"));
  // lodged (a child process) trusts the test server through Node's extra CA file; lxc through Go's.
  const ss = await SimpleStreamsServer.start(t, { tls: pki });
  const img = await buildBusyboxImages(t);
  const fp = await ss.addSplit(BUSYBOX, "20240101_00:00", { metadata: img.metadata, squashfs: img.squashfs });
  assert.equal(fp, img.splitFingerprint);

  process.env.NODE_EXTRA_CA_CERTS = pki.certPath;
  const d = await TestDaemon.start(t).finally(() => delete process.env.NODE_EXTRA_CA_CERTS);
  const env = { SSL_CERT_FILE: pki.certPath };
  await mkdir(join(d.dir, ".lxc-client"), { recursive: true });
  await d.lxc(["remote", "add", "ss", ss.url, "--protocol", "simplestreams", "--public"], { env });
  const listed = await d.lxc(["image", "list", "ss:", "--format", "csv", "-c", "lf"], { env });
  assert.match(listed.stdout, new RegExp(`^busybox \\(3 more\\),${fp.slice(0, 12)}$`, "m"));

  const progress: string[] = [];
  const sub = await d.client.events((e: Event) => {
    const md = (e.metadata as Operation).metadata;
    if (md && typeof md.download_progress === "string") progress.push(md.download_progress);
  }, { types: ["operation"] });
  t.after(() => sub.close());

  const r = await d.lxc(["image", "copy", "ss:busybox/1", "local:", "--alias", "x"], { env });
  assert.match(r.stdout + r.stderr, /Image copied successfully/);
  sub.close();

  const [got] = await images(d);
  assert.equal(got?.fingerprint, fp);
  assert.deepEqual(got?.aliases, [{ name: "x", description: "" }]);
  assert.equal(got?.cached, false);
  assert.equal(got?.type, "container");
  assert.equal(got?.properties.os, "busybox");
  assert.equal(got?.properties.serial, "20240101_00:00");
  assert.equal(got?.properties.type, "squashfs");
  assert.ok(progress.some((p) => /^metadata: \d+% \(.+\/s\)$/.test(p)), `progress: ${progress.join(" | ")}`);
  assert.ok(progress.some((p) => /^rootfs: 100% \(.+\/s\)$/.test(p)), `progress: ${progress.join(" | ")}`);
  assert.deepEqual(await imageFiles(d), [fp, `${fp}.rootfs`]);
  assert.ok(ss.requests.includes("GET /streams/v1/index.json"));
});

test("simplestreams by alias: update_source, refresh to a newer serial moves aliases; a corrupted file is refused and leaves nothing", async (t) => {
  const ss = await SimpleStreamsServer.start(t);
  const v1 = await buildBusyboxImages(t);
  const fp1 = await ss.addSplit(BUSYBOX, "20240101_00:00", { metadata: v1.metadata, squashfs: v1.squashfs });
  const d = await TestDaemon.start(t);

  const op = await pull(d, {
    source: { type: "image", mode: "pull", protocol: "simplestreams", server: ss.url, alias: "busybox/1" },
    auto_update: true,
    aliases: [{ name: "bb", description: "mine" }],
  });
  assert.equal(op.metadata?.fingerprint, fp1);
  let img = await d.client.get<Image>(`/1.0/images/${fp1}`);
  assert.deepEqual(img.update_source, { alias: "busybox/1", certificate: "", protocol: "simplestreams", server: ss.url, image_type: "container" });
  assert.equal(img.auto_update, true);
  assert.deepEqual(img.aliases, [{ name: "bb", description: "mine" }]);

  // The medium alias (with the product's architecture) names the same image; pulling it again is a no-op.
  const again = await pull(d, { source: { type: "image", protocol: "simplestreams", server: ss.url, alias: "busybox/1/amd64" } });
  assert.equal(again.metadata?.fingerprint, fp1);
  assert.equal((await images(d)).length, 1);

  // Nothing newer yet.
  const same = await d.client.wait(await d.client.post<Operation>(`/1.0/images/${fp1}/refresh`));
  assert.equal(same.metadata?.refreshed, false);

  // A newer serial appears: refresh replaces the image and moves the alias.
  const v2 = await buildBusyboxImages(t, NEWER_METADATA);
  const fp2 = await ss.addSplit(BUSYBOX, "20240102_00:00", { metadata: v2.metadata, squashfs: v2.squashfs });
  assert.notEqual(fp2, fp1);
  const refreshed = await d.lxc(["image", "refresh", fp1.slice(0, 12)]);
  assert.match(refreshed.stdout, /Image refreshed successfully/);
  const list = await images(d);
  assert.deepEqual(list.map((i) => i.fingerprint), [fp2]);
  img = list[0]!;
  assert.equal(img.auto_update, true);
  assert.equal(img.properties.serial, "20240102_00:00");
  assert.equal(img.update_source?.alias, "busybox/1");
  assert.equal((await d.client.get<ImageAliasEntry>("/1.0/images/aliases/bb")).target, fp2);
  assert.deepEqual(await imageFiles(d), [fp2, `${fp2}.rootfs`]);

  // A product whose rootfs does not match its published sha256.
  const broken = await ss.addSplit({ ...BUSYBOX, release: "broken", aliases: ["broken"] }, "20240101_00:00", { metadata: v1.metadata, squashfs: v2.squashfs });
  const item = (ss.products.get("busybox:broken:amd64:default")!.versions["20240101_00:00"] as { items: Record<string, { path: string }> }).items["root.squashfs"]!;
  await ss.corrupt(item.path);
  await assert.rejects(
    pull(d, { source: { type: "image", protocol: "simplestreams", server: ss.url, alias: "broken" }, aliases: [{ name: "nope" }] }),
    /Hash mismatch/,
  );
  assert.deepEqual((await images(d)).map((i) => i.fingerprint), [fp2]);
  assert.ok(!(await d.client.get<string[]>("/1.0/images/aliases")).includes("/1.0/images/aliases/nope"));
  assert.deepEqual(await imageFiles(d), [fp2, `${fp2}.rootfs`]);
  assert.ok(broken);

  // Unknown alias and bad protocol are clear errors.
  await assert.rejects(pull(d, { source: { type: "image", protocol: "simplestreams", server: ss.url, alias: "nosuch" } }), /not found/);
  await assert.rejects(d.client.post("/1.0/images", { source: { type: "image", protocol: "ftp", server: ss.url, alias: "x" } }).then((o) => d.client.wait(o as Operation)), /Invalid image source protocol "ftp"/);
});

test("LXD protocol: one lodged copies from another over unix://, by alias (split) and by fingerprint prefix (unified)", async (t) => {
  const img = await buildBusyboxImages(t);
  const src = await TestDaemon.start(t);
  await src.lxc(["image", "import", img.metadata, img.squashfs, "--alias", "origin"]);
  await src.lxc(["image", "import", img.unified, "--public"]);
  const d = await TestDaemon.start(t);
  const server = `unix://${src.socket}`;

  const progress: string[] = [];
  const sub = await d.client.events((e: Event) => {
    const md = (e.metadata as Operation).metadata;
    if (md && typeof md.download_progress === "string") progress.push(md.download_progress);
  }, { types: ["operation"] });
  t.after(() => sub.close());

  const a = await pull(d, { source: { type: "image", protocol: "lxd", server, alias: "origin" }, aliases: [{ name: "copied" }] });
  assert.equal(a.metadata?.fingerprint, img.splitFingerprint);
  const b = await pull(d, { source: { type: "image", protocol: "lxd", server, fingerprint: img.unifiedFingerprint.slice(0, 12) } });
  assert.equal(b.metadata?.fingerprint, img.unifiedFingerprint);
  sub.close();

  const split = await d.client.get<Image>(`/1.0/images/${img.splitFingerprint}`);
  assert.deepEqual(split.update_source, { alias: "origin", certificate: "", protocol: "lxd", server, image_type: "container" });
  assert.deepEqual(split.aliases, [{ name: "copied", description: "" }]);
  const unified = await d.client.get<Image>(`/1.0/images/${img.unifiedFingerprint}`);
  assert.equal(unified.update_source, undefined, "an image pulled by fingerprint has no update source");
  assert.deepEqual(
    await imageFiles(d),
    [img.unifiedFingerprint, img.splitFingerprint, `${img.splitFingerprint}.rootfs`].sort(),
  );
  assert.ok(progress.some((p) => /^(metadata|rootfs): /.test(p)), progress.join(" | "));

  // Refresh against the LXD remote: the alias moves to a new image there, and here.
  const v2 = await buildBusyboxImages(t, NEWER_METADATA);
  await src.lxc(["image", "import", v2.metadata, v2.squashfs]);
  await src.lxc(["image", "alias", "delete", "origin"]);
  await src.lxc(["image", "alias", "create", "origin", v2.splitFingerprint]);
  const r = await d.client.wait(await d.client.post<Operation>(`/1.0/images/${img.splitFingerprint}/refresh`));
  assert.equal(r.metadata?.refreshed, true);
  assert.equal((await d.client.get<ImageAliasEntry>("/1.0/images/aliases/copied")).target, v2.splitFingerprint);

  await assert.rejects(pull(d, { source: { type: "image", protocol: "lxd", server, alias: "missing" } }), /not found/);
  await assert.rejects(pull(d, { source: { type: "image", protocol: "lxd", server: "http://127.0.0.1:1", alias: "x" } }), /only https/);
});

test("source.type=url: LXD-Image-URL and LXD-Image-Hash, verified; a wrong hash leaves nothing", async (t) => {
  const ss = await SimpleStreamsServer.start(t);
  const img = await buildBusyboxImages(t);
  const d = await TestDaemon.start(t);

  const url = await ss.addDirect("busybox.tar.gz", img.unified);
  const op = await pull(d, { source: { type: "url", url }, aliases: [{ name: "from-url" }], public: true });
  assert.equal(op.metadata?.fingerprint, img.unifiedFingerprint);
  const got = await d.client.get<Image>(`/1.0/images/${img.unifiedFingerprint}`);
  assert.equal(got.public, true);
  assert.equal(got.filename, "busybox.tar.gz");
  assert.deepEqual(got.aliases, [{ name: "from-url", description: "" }]);
  assert.ok(ss.requests.includes("HEAD /direct/busybox.tar.gz"));

  const bad = await ss.addDirect("liar.tar.gz", img.unified, { hash: "0".repeat(64) });
  await assert.rejects(pull(d, { source: { type: "url", url: bad } }), /Hash mismatch|fingerprint mismatch/);
  await assert.rejects(pull(d, { source: { type: "url", url: `${ss.url}/streams/v1/index.json` } }), /Missing LXD-Image-Hash/);
  assert.deepEqual((await images(d)).map((i) => i.fingerprint), [img.unifiedFingerprint]);
  assert.deepEqual(await imageFiles(d), [img.unifiedFingerprint]);
});

test("expiry removes cached images unused for images.remote_cache_expiry days, keeps the rest; auto-update leaves images without an origin alone", async (t) => {
  const { SqliteStore } = await import("../../src/state/sqlite.js");
  const { EventHub } = await import("../../src/core/events.js");
  const { ImageStore } = await import("../../src/images/store.js");
  const { ImageMaintenance } = await import("../../src/images/maintenance.js");
  const { imageKey } = await import("../../src/images/types.js");
  const dir = await scratchDir(t, "lodge-expiry-");
  const docs = SqliteStore.open(join(dir, "state.db"));
  t.after(() => docs.close());
  const store = new ImageStore({ dir, store: docs, events: new EventHub() });
  await store.init();
  const img = await buildBusyboxImages(t);
  const old = await store.addImage({ project: "default", metadataPath: img.unified, cached: true });
  const fresh = await store.addImage({ project: "default", metadataPath: img.metadata, rootfsPath: img.squashfs, cached: true });
  const v2 = await buildBusyboxImages(t, NEWER_METADATA);
  const mine = await store.addImage({ project: "default", metadataPath: v2.unified, autoUpdate: true });
  // Age two images: one cached (expires), one the user imported (never expires).
  const age = async (fp: string, when: string) =>
    docs.txn(async (tx) => {
      const doc = await tx.get<Record<string, unknown>>(imageKey("default", fp));
      tx.put(imageKey("default", fp), { ...doc!.value, last_used_at: when, uploaded_at: when });
    });
  const elevenDaysAgo = new Date(Date.now() - 11 * 86_400_000).toISOString();
  await age(old.fingerprint, elevenDaysAgo);
  await age(mine.fingerprint, elevenDaysAgo);
  await store.markUsed("default", fresh.fingerprint);

  const config = { expiry: "10", value: async (k: string) => (k === "images.remote_cache_expiry" ? config.expiry : "6") };
  const refreshed: string[] = [];
  const silent = { info() {}, warn() {}, debug() {} };
  const m = new ImageMaintenance({
    images: store,
    config,
    log: silent,
    refresh: async (_p, fp) => {
      refreshed.push(fp);
      return { refreshed: false };
    },
  });

  config.expiry = "0"; // 0 keeps cached images forever
  assert.deepEqual(await m.pruneExpired(), []);
  config.expiry = "10";
  assert.deepEqual(await m.pruneExpired(), [old.fingerprint]);
  const left = (await store.list("default")).map((i) => i.fingerprint).sort();
  assert.deepEqual(left, [fresh.fingerprint, mine.fingerprint].sort());
  assert.deepEqual((await readdir(join(dir, "images"))).sort(), [fresh.fingerprint, `${fresh.fingerprint}.rootfs`, mine.fingerprint].sort());

  // Only auto_update images with an origin are refreshed (this one has none: nothing to ask).
  assert.deepEqual(await m.autoUpdate(), []);
  assert.deepEqual(refreshed, []);
  m.start();
  await m.stop();
});

test("https image servers: an unknown self-signed certificate is refused; a pinned certificate is accepted only if it matches", async (t) => {
  const scratch = await scratchDir(t, "lodge-pki-");
  const pki = await selfSignedCert(scratch);
  const other = await selfSignedCert(await scratchDir(t, "lodge-pki-"));
  const ss = await SimpleStreamsServer.start(t, { tls: pki });
  const img = await buildBusyboxImages(t);
  const fp = await ss.addSplit(BUSYBOX, "20240101_00:00", { metadata: img.metadata, squashfs: img.squashfs });
  const d = await TestDaemon.start(t);
  const source = { type: "image", protocol: "simplestreams", server: ss.url, alias: "busybox" };

  await assert.rejects(pull(d, { source }), /Unable to reach .*certificate/i);
  await assert.rejects(pull(d, { source: { ...source, certificate: other.cert } }), /does not match/);
  assert.deepEqual(await images(d), []);
  const op = await pull(d, { source: { ...source, certificate: pki.cert } });
  assert.equal(op.metadata?.fingerprint, fp);
  const got = await d.client.get<Image>(`/1.0/images/${fp}`);
  assert.equal(got.update_source?.certificate, pki.cert);
});

/**
 * The bootable busybox image (unified) as a split image an image server can publish: its
 * metadata tarball and its rootfs as SquashFS. `creationDate` makes another version of it.
 */
async function bootableSplit(t: test.TestContext, creationDate?: number): Promise<{ metadata: string; squashfs: string }> {
  const dir = await scratchDir(t, "lodge-bbsplit-");
  await runCommand("tar", ["--extract", "--numeric-owner", "--file", (await busyboxImage()).file, "--directory", dir]);
  if (creationDate !== undefined) {
    const meta = join(dir, "metadata.yaml");
    await writeFile(meta, (await readFile(meta, "utf8")).replace(/^creation_date: \d+$/m, `creation_date: ${creationDate}`));
  }
  const metadata = join(dir, "meta.tar.xz");
  const members = (await readdir(dir)).filter((f) => f === "metadata.yaml" || f === "templates");
  await tar(dir, metadata, members, "--xz");
  const squashfs = join(dir, "rootfs.squashfs");
  await runCommand("mksquashfs", [join(dir, "rootfs"), squashfs, "-noappend", "-quiet", "-comp", "gzip"]);
  return { metadata, squashfs };
}

test("auto-update: the daemon's own maintenance round pulls the origin's newer image, moves the alias, and leaves instances alone", async (t) => {
  const ss = await SimpleStreamsServer.start(t);
  const fp1 = await ss.addSplit(BUSYBOX, "20240101_00:00", await bootableSplit(t));
  const { d, client, lxc } = await inProcessDaemon(t);
  const maintenance = d.imageMaintenance!;
  assert.ok(maintenance, "the daemon runs image maintenance");
  const op = await client.post<Operation>("/1.0/images", {
    source: { type: "image", protocol: "simplestreams", server: ss.url, alias: "busybox/1" },
    auto_update: true,
    aliases: [{ name: "bb", description: "" }],
  });
  assert.equal((await client.wait(op)).metadata?.fingerprint, fp1);
  await lxc(["launch", "bb", "c1"]);
  t.after(() => lxc(["delete", "--force", "c1"], { allowFail: true }));
  const before = await client.get<{ pid: number }>("/1.0/instances/c1/state");

  // Nothing newer at the origin: a round changes nothing.
  assert.deepEqual(await maintenance.autoUpdate(), []);
  assert.equal((await client.get<ImageAliasEntry>("/1.0/images/aliases/bb")).target, fp1);

  // The origin publishes a newer serial: the next round pulls it and moves the alias.
  const fp2 = await ss.addSplit(BUSYBOX, "20240102_00:00", await bootableSplit(t, 1700100000));
  assert.notEqual(fp2, fp1);
  let refreshedEvent!: (fp: string) => void;
  const refreshedP = new Promise<string>((r) => (refreshedEvent = r));
  const sub = await client.events((e: Event) => {
    const md = e.metadata as { action?: string; context?: { fingerprint?: string } };
    if (md.action === "image-refreshed") refreshedEvent(String(md.context?.fingerprint));
  }, { types: ["lifecycle"] });
  t.after(() => sub.close());
  assert.deepEqual(await maintenance.autoUpdate(), [fp1], "the round refreshed the old image");
  assert.equal(await refreshedP, fp2, "an image-refreshed lifecycle event names the new image");
  sub.close();
  assert.equal((await client.get<ImageAliasEntry>("/1.0/images/aliases/bb")).target, fp2);
  const list = await client.get<Image[]>("/1.0/images?recursion=1");
  assert.deepEqual(list.map((i) => i.fingerprint), [fp2]);
  assert.equal(list[0]!.auto_update, true, "the new image keeps auto_update");
  assert.equal(list[0]!.properties.serial, "20240102_00:00");
  assert.ok(ss.requests.some((r) => r.includes("20240102_00_00")), "the newer files were downloaded");

  // The running instance is untouched: same init, still execs, still says where it came from.
  const after = await client.get<{ pid: number; status: string }>("/1.0/instances/c1/state");
  assert.equal(after.status, "Running");
  assert.equal(after.pid, before.pid);
  assert.equal((await lxc(["exec", "c1", "--", "echo", "still"])).stdout, "still\n");
  const c1 = await client.get<{ config: Record<string, string> }>("/1.0/instances/c1");
  assert.equal(c1.config["volatile.base_image"], fp1);
  // A new instance from the alias gets the new image.
  await lxc(["init", "bb", "c2"]);
  t.after(() => lxc(["delete", "--force", "c2"], { allowFail: true }));
  assert.equal((await client.get<{ config: Record<string, string> }>("/1.0/instances/c2")).config["volatile.base_image"], fp2);
  // Nothing newer again: the next round is a no-op.
  assert.deepEqual(await maintenance.autoUpdate(), []);
});
