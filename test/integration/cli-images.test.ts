import test, { after, before, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { Image, ImageAliasEntry } from "../../src/images/types.js";
import { ROOT, TestDaemon, type RunResult } from "../helpers/daemon.js";
import { buildBusyboxImages, DEFAULT_METADATA, scratchDir, sha256Files } from "../helpers/images.js";
import { SimpleStreamsServer, type ProductSpec } from "../helpers/simplestreams.js";

const BUSYBOX: ProductSpec = { os: "busybox", release: "1", arch: "amd64", variant: "default", aliases: ["busybox/1", "busybox"] };

// One daemon for the file; each test removes the images it made, so they do not meet.
let d: TestDaemon;
let confDir: string;
before(async () => {
  d = await TestDaemon.start(undefined);
  confDir = await mkdtemp(join(tmpdir(), "lodge-cli-conf-"));
});
after(async () => {
  await d?.destroy();
  if (confDir) await rm(confDir, { recursive: true, force: true });
});

/** `lodge` with a client config of its own (never the user's ~/.config). */
const lodge = (args: string[], opts: { input?: string; conf?: string } = {}): Promise<RunResult> =>
  d.lodge(args, { allowFail: true, input: opts.input, env: { LODGE_CONF: opts.conf ?? join(confDir, "default.yml") } });

async function ok(args: string[], opts?: { input?: string; conf?: string }): Promise<RunResult> {
  const r = await lodge(args, opts);
  assert.equal(r.code, 0, `lodge ${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function images(): Promise<Image[]> {
  return (await d.client.get<Image[]>("/1.0/images?recursion=1")) ?? [];
}

/** Deletes every image when the test ends, whatever happened. */
function cleanImages(t: TestContext): void {
  t.after(async () => {
    for (const img of await images()) await d.client.wait(await d.client.delete(`/1.0/images/${img.fingerprint}`));
  });
}

const importedFingerprint = (r: RunResult) => /Image imported with fingerprint: ([0-9a-f]{64})/.exec(r.stdout)?.[1];

test("import a unified tarball with aliases, then list it in every format and show it", async (t) => {
  cleanImages(t);
  const built = await buildBusyboxImages(t);
  const r = await ok(["image", "import", built.unified, "--alias", "bb", "--alias", "busybox-unified"]);
  assert.equal(importedFingerprint(r), built.unifiedFingerprint);
  const fp12 = built.unifiedFingerprint.slice(0, 12);

  const table = (await ok(["image", "list"])).stdout;
  assert.match(table, /\| ALIAS\s+\| FINGERPRINT\s+\| PUBLIC \| DESCRIPTION\s+\| ARCHITECTURE \| TYPE\s+\| SIZE\s+\| UPLOAD DATE\s+\|/);
  assert.match(table, new RegExp(`\\| bb \\(1 more\\)\\s+\\| ${fp12} \\| no\\s+\\| Busybox test image \\| x86_64\\s+\\| CONTAINER \\| [0-9.]+MB \\|`));

  const csv = (await ok(["image", "list", "--format", "csv", "-c", "Lfp"])).stdout;
  assert.equal(csv, `"bb\nbusybox-unified",${fp12},no\n`);

  const json = JSON.parse((await ok(["image", "list", "--format", "json"])).stdout) as Image[];
  assert.equal(json.length, 1);
  assert.equal(json[0]!.fingerprint, built.unifiedFingerprint);
  assert.deepEqual(json[0]!.aliases.map((a) => a.name).sort(), ["bb", "busybox-unified"]);
  const yaml = parseYaml((await ok(["--format", "yaml", "image", "list"])).stdout) as Image[];
  assert.deepEqual(yaml, json);

  // Filters: a property, a word of an alias; no match prints an empty table.
  assert.match((await ok(["image", "list", "os=busybox", "unified"])).stdout, /bb \(1 more\)/);
  assert.equal((await ok(["image", "list", "--format", "csv", "os=debian"])).stdout, "");

  const info = (await ok(["image", "info", "bb"])).stdout;
  assert.match(info, new RegExp(`^Fingerprint:\\s+${built.unifiedFingerprint}$`, "m"));
  assert.match(info, /^Architecture:\s+x86_64$/m);
  assert.match(info, /^Properties:\s+description: Busybox test image$/m);
  // A fingerprint prefix names the image too, and json is the API object.
  const infoJson = JSON.parse((await ok(["image", "info", fp12.slice(0, 6), "--format", "json"])).stdout) as Image;
  assert.equal(infoJson.fingerprint, built.unifiedFingerprint);
});

test("import a split image with a property, export it back, byte for byte", async (t) => {
  cleanImages(t);
  const built = await buildBusyboxImages(t);
  const r = await ok(["image", "import", built.metadata, built.squashfs, "local:", "--alias", "split", "--property", "stage=test"]);
  assert.equal(importedFingerprint(r), built.splitFingerprint);
  const [img] = await images();
  assert.equal(img!.properties.stage, "test");
  assert.equal(img!.properties.os, "busybox", "metadata.yaml's properties are kept");

  const out = await scratchDir(t, "lodge-export-");
  const written = (await ok(["image", "export", "split", out])).stdout.trim().split("\n");
  assert.deepEqual(written, [
    join(out, `meta-${built.splitFingerprint}.tar.xz`),
    join(out, `${built.splitFingerprint}.squashfs`),
  ]);
  assert.equal(await sha256Files(...written), built.splitFingerprint);
  assert.deepEqual((await readdir(out)).sort(), written.map((f) => f.slice(out.length + 1)).sort(), "no temporary files left");
});

test("export of a unified image: into a directory, or to a base name", async (t) => {
  cleanImages(t);
  const built = await buildBusyboxImages(t);
  await ok(["image", "import", built.unified, "--alias", "uni"]);
  const out = await scratchDir(t, "lodge-export-");
  const [inDir] = (await ok(["image", "export", "uni", join(out, "sub") + "/"])).stdout.trim().split("\n");
  assert.equal(inDir, join(out, "sub", `${built.unifiedFingerprint}.tar.gz`));
  assert.equal(await sha256Files(inDir!), built.unifiedFingerprint);
  const named = (await ok(["image", "export", built.unifiedFingerprint.slice(0, 8), join(out, "named")])).stdout.trim();
  assert.equal(named, join(out, "named.tar.gz"));
  assert.equal(await sha256Files(named), built.unifiedFingerprint);
});

test("aliases: create, list, rename, delete", async (t) => {
  cleanImages(t);
  const built = await buildBusyboxImages(t);
  await ok(["image", "import", built.unified]);
  const fp = built.unifiedFingerprint;
  await ok(["image", "alias", "create", "first", fp.slice(0, 10), "--description", "the first"]);
  await ok(["image", "alias", "create", "local:second", "first"]);
  const table = (await ok(["image", "alias", "list"])).stdout;
  assert.match(table, new RegExp(`\\| first\\s+\\| ${fp.slice(0, 12)} \\| CONTAINER \\| the first\\s+\\|`));
  assert.match(table, /\| second /);
  assert.equal((await ok(["image", "alias", "list", "--format", "csv", "sec"])).stdout, `second,${fp.slice(0, 12)},CONTAINER,\n`);

  await ok(["image", "alias", "rename", "second", "third"]);
  await ok(["image", "alias", "delete", "first"]);
  const left = JSON.parse((await ok(["image", "alias", "list", "--format", "json"])).stdout) as ImageAliasEntry[];
  assert.deepEqual(left.map((a) => [a.name, a.target]), [["third", fp]]);

  const dup = await lodge(["image", "alias", "create", "third", fp]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /third/);
  const missing = await lodge(["image", "alias", "delete", "nope"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope/);
  const badTarget = await lodge(["image", "alias", "create", "x", "no-such-image"]);
  assert.equal(badTarget.code, 1);
  assert.match(badTarget.stderr, /^Error: Image "no-such-image" not found$/m);
});

test("set-property, unset-property and edit (YAML on stdin) change the image", async (t) => {
  cleanImages(t);
  const built = await buildBusyboxImages(t);
  await ok(["image", "import", built.unified, "--alias", "ed"]);
  await ok(["image", "set-property", "ed", "color", "blue"]);
  await ok(["image", "unset-property", "ed", "release"]);
  let [img] = await images();
  assert.equal(img!.properties.color, "blue");
  assert.equal(img!.properties.release, undefined);

  // What edit offers is what it takes: show the writable fields, change them, send them back.
  const yaml = parseYaml((await ok(["image", "info", "ed", "--format", "yaml"])).stdout) as Image;
  const edited = { public: true, auto_update: false, profiles: yaml.profiles, properties: { ...yaml.properties, os: "edited", n: 12 } };
  await ok(["image", "edit", "ed"], { input: JSON.stringify(edited) });
  [img] = await images();
  assert.equal(img!.public, true);
  assert.equal(img!.properties.os, "edited");
  assert.equal(img!.properties.n, "12");
  assert.equal(img!.properties.color, "blue");

  const readOnly = await lodge(["image", "edit", "ed"], { input: "fingerprint: abc\n" });
  assert.equal(readOnly.code, 2);
  assert.match(readOnly.stderr, /"fingerprint" cannot be edited/);
  const unknown = await lodge(["image", "set-property", "nothere", "k", "v"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^Error: Image "nothere" not found$/m);
});

test("delete removes the image; unknown images and remotes fail with exit 1, naming them", async (t) => {
  cleanImages(t);
  const built = await buildBusyboxImages(t);
  await ok(["image", "import", built.unified, "--alias", "gone"]);
  await ok(["image", "delete", "gone"]);
  assert.deepEqual(await images(), []);
  for (const args of [["image", "info", "gone"], ["image", "delete", "gone"], ["image", "export", "gone"], ["image", "refresh", "gone"]]) {
    const r = await lodge(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, /^Error: Image "gone" not found$/m, args.join(" "));
  }
  for (const args of [["image", "info", "nowhere:gone"], ["image", "list", "nowhere:"], ["image", "copy", "nowhere:x", "local:"]]) {
    const r = await lodge(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, /^Error: Remote "nowhere" doesn't exist/m, args.join(" "));
  }
  const noFile = await lodge(["image", "import", join(built.dir, "missing.tar.gz")]);
  assert.equal(noFile.code, 1);
  assert.match(noFile.stderr, /missing\.tar\.gz/);
  assert.deepEqual(await images(), []);
});

test("image build busybox --import --alias bb, then image info bb", async (t) => {
  cleanImages(t);
  const work = await scratchDir(t, "lodge-build-cwd-");
  const r = await ok(["image", "build", join(ROOT, "images/busybox.yaml"), "--import", "--alias", "bb"]);
  const fp = importedFingerprint(r);
  assert.ok(fp, r.stdout);
  assert.match(r.stderr, /busybox .* rootfs ready/, "the builder's progress lines are shown");
  const info = (await ok(["image", "info", "bb"])).stdout;
  assert.match(info, new RegExp(`^Fingerprint:\\s+${fp}$`, "m"));
  assert.match(info, /^Properties:[\s\S]*os: busybox$/m);
  // --output keeps the files (split here) and prints them; their hash is the fingerprint.
  const split = await ok(["image", "build", join(ROOT, "images/busybox.yaml"), "--split", "--output", work]);
  const files = split.stdout.trim().split("\n").slice(0, 2);
  assert.match(split.stdout, /^Image built with fingerprint: [0-9a-f]{64}$/m);
  assert.equal(await sha256Files(...files), /fingerprint: ([0-9a-f]{64})/.exec(split.stdout)![1]);
  const missing = await lodge(["image", "build", join(work, "nope.yaml")]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.yaml/);
});

test("remote add, list, rename, switch and remove, in $LODGE_CONF", async (t) => {
  const dir = await scratchDir(t, "lodge-remotes-");
  const conf = join(dir, "nested", "config.yml");
  const run = (args: string[]) => lodge(args, { conf });
  const list = async () => (await ok(["remote", "list", "--format", "csv"], { conf })).stdout;
  assert.equal(await list(), "local (current),unix://,lxd,NO,YES\n");

  await ok(["remote", "add", "images", "https://images.example.org", "--protocol", "simplestreams"], { conf });
  await ok(["remote", "add", "lx", "https://10.0.0.1:8443", "--public"], { conf });
  assert.equal(
    await list(),
    "images,https://images.example.org,simplestreams,YES,NO\nlocal (current),unix://,lxd,NO,YES\nlx,https://10.0.0.1:8443,lxd,YES,NO\n",
  );
  const saved = parseYaml(await readFile(conf, "utf8"));
  assert.deepEqual(saved.remotes.images, { addr: "https://images.example.org", protocol: "simplestreams", public: true });
  const yaml = parseYaml((await ok(["remote", "list", "--format", "yaml"], { conf })).stdout) as { name: string }[];
  assert.deepEqual(yaml.map((r) => r.name), ["images", "local", "lx"]);

  await ok(["remote", "rename", "lx", "lx2"], { conf });
  await ok(["remote", "switch", "lx2"], { conf });
  assert.equal((await ok(["remote", "get-default"], { conf })).stdout, "lx2\n");
  const busy = await run(["remote", "remove", "lx2"]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /"lx2" is the default/);
  await ok(["remote", "switch", "local"], { conf });
  await ok(["remote", "remove", "lx2"], { conf });
  await ok(["remote", "remove", "images"], { conf });
  assert.equal(await list(), "local (current),unix://,lxd,NO,YES\n");

  const failures: [string[], RegExp][] = [
    [["remote", "remove", "local"], /"local" .* cannot be removed/],
    [["remote", "remove", "ghost"], /Remote "ghost" doesn't exist/],
    [["remote", "switch", "ghost"], /Remote "ghost" doesn't exist/],
    [["remote", "add", "bad:name", "https://x"], /Invalid remote name "bad:name"/],
    [["remote", "add", "x", "ftp://x"], /Invalid address "ftp:\/\/x"/],
    [["remote", "add", "x", "https://x", "--protocol", "oci"], /Invalid protocol "oci"/],
  ];
  for (const [args, re] of failures) {
    const r = await run(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
  }
  // A broken config file is reported with its path.
  await mkdir(join(dir, "broken"));
  await writeFile(join(dir, "broken", "c.yml"), "remotes:\n  x: {addr: 12}\n");
  const broken = await lodge(["remote", "list"], { conf: join(dir, "broken", "c.yml") });
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /remote "x" needs an addr/);
});

test("image copy from an unreachable remote fails with exit 1 and leaves no image", async (t) => {
  cleanImages(t);
  const conf = join(await scratchDir(t, "lodge-remotes-"), "config.yml");
  await ok(["remote", "add", "dead", "http://127.0.0.1:9", "--protocol", "simplestreams"], { conf });
  const r = await lodge(["image", "copy", "dead:busybox", "local:", "--alias", "x"], { conf });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: /m);
  assert.deepEqual(await images(), []);
});

test("image list REMOTE: reads a simplestreams server's catalogue", async (t) => {
  const fp = "a".repeat(64);
  const vmFp = "b".repeat(64);
  const docs: Record<string, unknown> = {
    "/streams/v1/index.json": { format: "index:1.0", index: { images: { datatype: "image-downloads", path: "streams/v1/images.json" } } },
    "/streams/v1/images.json": {
      format: "products:1.0",
      products: {
        "busybox:1.36:amd64:default": {
          aliases: "busybox/1.36,busybox",
          arch: "amd64",
          os: "busybox",
          release: "1.36",
          variant: "default",
          versions: {
            "20240101_01:00": { items: { "lxd.tar.xz": { ftype: "lxd.tar.xz", size: 1, combined_squashfs_sha256: "c".repeat(64) }, r: { ftype: "squashfs", size: 1 } } },
            "20240131_14:05": {
              items: {
                "lxd.tar.xz": { ftype: "lxd.tar.xz", size: 1024, combined_squashfs_sha256: fp, "combined_disk-kvm-img_sha256": vmFp },
                "root.squashfs": { ftype: "squashfs", size: 1047552 },
                "disk.qcow2": { ftype: "disk-kvm.img", size: 2096128 },
              },
            },
          },
        },
      },
    },
  };
  const server = createServer((req, res) => {
    const doc = docs[req.url ?? ""];
    res.writeHead(doc ? 200 : 404, { "content-type": "application/json" }).end(doc ? JSON.stringify(doc) : "{}");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const conf = join(await scratchDir(t, "lodge-remotes-"), "config.yml");
  await ok(["remote", "add", "ss", `http://127.0.0.1:${(server.address() as AddressInfo).port}`, "--protocol", "simplestreams"], { conf });

  const csv = (await ok(["image", "list", "ss:", "--format", "csv", "-c", "Lftsu"], { conf })).stdout;
  assert.equal(
    csv,
    `"busybox\nbusybox/1.36",aaaaaaaaaaaa,CONTAINER,1.00MB,"Jan 31, 2024 at 2:05pm (UTC)"\n` +
      `"busybox\nbusybox/1.36",bbbbbbbbbbbb,VIRTUAL-MACHINE,2.00MB,"Jan 31, 2024 at 2:05pm (UTC)"\n`,
  );
  const json = JSON.parse((await ok(["image", "list", "ss:", "type=virtual-machine", "--format", "json"], { conf })).stdout) as Image[];
  assert.deepEqual(json.map((i) => [i.fingerprint, i.architecture, i.properties.os]), [[vmFp, "x86_64", "busybox"]]);
  assert.equal((await ok(["image", "list", "ss:alpine", "--format", "csv"], { conf })).stdout, "");

  await ok(["remote", "add", "gone", "http://127.0.0.1:9", "--protocol", "simplestreams"], { conf });
  const down = await lodge(["image", "list", "gone:"], { conf });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /Cannot reach http:\/\/127\.0\.0\.1:9\/streams\/v1\/index\.json/);
});

test("image copy REMOTE:alias local: pulls through the daemon; list shows the remote's image; refresh", async (t) => {
  cleanImages(t);
  const ss = await SimpleStreamsServer.start(t);
  const v1 = await buildBusyboxImages(t);
  const fp = await ss.addSplit(BUSYBOX, "20240101_00:00", { metadata: v1.metadata, squashfs: v1.squashfs });
  const conf = join(await scratchDir(t, "lodge-remotes-"), "config.yml");
  await ok(["remote", "add", "ss", ss.url, "--protocol", "simplestreams"], { conf });

  const remote = JSON.parse((await ok(["image", "list", "ss:", "--format", "json"], { conf })).stdout) as Image[];
  assert.deepEqual(remote.map((i) => i.fingerprint), [fp], "the client computes the fingerprint the daemon will get");

  const r = await ok(["image", "copy", "ss:busybox", "local:", "--alias", "mine", "--copy-aliases", "--auto-update"], { conf });
  assert.equal(r.stdout, `Image copied with fingerprint: ${fp}\n`);
  const [img] = await images();
  assert.equal(img!.fingerprint, fp);
  assert.equal(img!.auto_update, true);
  assert.deepEqual(img!.aliases.map((a) => a.name).sort(), ["busybox", "mine"]);
  assert.equal(img!.update_source?.server, ss.url);

  assert.equal((await ok(["image", "refresh", "mine"], { conf })).stdout, 'Image "mine" is already up to date\n');
  const v2 = await buildBusyboxImages(t, DEFAULT_METADATA.replace("creation_date: 1700000000", "creation_date: 1700100000"));
  const fp2 = await ss.addSplit(BUSYBOX, "20240102_00:00", { metadata: v2.metadata, squashfs: v2.squashfs });
  assert.equal((await ok(["image", "refresh", "mine"], { conf })).stdout, 'Image "mine" refreshed\n');
  assert.deepEqual((await images()).map((i) => i.fingerprint), [fp2]);

  const missing = await lodge(["image", "copy", "ss:alpine", "local:"], { conf });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /alpine/);
});
