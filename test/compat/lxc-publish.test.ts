import test from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readdir } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import type { Operation } from "../../src/api/operation.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";

// `lxc publish` and `lodge publish` against lodged: an instance becomes an image that launches.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

/** Type, mode, owner and content of every entry under `dir` inside a container, sorted. */
async function listing(d: TestDaemon, name: string, dir: string): Promise<string> {
  const r = await d.lxc(["exec", name, "--", "sh", "-c", `cd ${dir} && find . | sort | while read f; do echo "$(stat -c '%A %u:%g' "$f") $f $( [ -f "$f" ] && [ ! -L "$f" ] && md5sum < "$f" | cut -c1-32)"; done`]);
  return r.stdout;
}

test("lxc publish then lxc launch: the same files and owners, the image's properties and the request's", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c1"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "mkdir -p /srv/app && echo v1 > /srv/app/conf && chown 1000:1001 /srv/app/conf && cp /bin/busybox /srv/suid && chmod 4755 /srv/suid && ln -s /srv/app/conf /srv/link"]);
  const before = await listing(d, "c1", "/srv");

  // Running: lxc refuses without --force; with it, lxc stops the instance, publishes, restarts it.
  const refused = await d.lxc(["publish", "c1", "--alias", "p1"], { allowFail: true });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /currently running/);
  // The server refuses too (a client that does not check first).
  const op = await d.client.post<Operation>("/1.0/images", { source: { type: "instance", name: "c1" } });
  await assert.rejects(d.client.wait(op), /Cannot publish a running instance/);
  const pub = await d.lxc(["publish", "c1", "--force", "--alias", "p1", "stage=one", "description=Published c1"]);
  assert.match(pub.stdout, /Instance published with fingerprint: [0-9a-f]{64}/);
  assert.equal(JSON.parse((await d.lxc(["query", "/1.0/instances/c1"])).stdout).status, "Running", "restarted after the publish");

  const img = JSON.parse((await d.lxc(["query", "/1.0/images/aliases/p1"])).stdout) as { target: string };
  const image = JSON.parse((await d.lxc(["query", `/1.0/images/${img.target}`])).stdout) as { properties: Record<string, string>; type: string; architecture: string };
  assert.equal(image.type, "container");
  assert.equal(image.properties.stage, "one");
  assert.equal(image.properties.description, "Published c1");
  assert.equal(image.properties.os, "busybox", "the source image's own properties are kept");
  // A unified image: metadata.yaml (with the properties), templates/, rootfs/ with container ids.
  const file = join(d.dir, "images", img.target);
  const members = (await runCommand("tar", ["-tvzf", file, "--numeric-owner"])).stdout;
  assert.match(members, / metadata\.yaml$/m);
  assert.match(members, / templates\/hostname\.tpl$/m);
  assert.match(members, /1000\/1001 .* rootfs\/srv\/app\/conf$/m);
  assert.match(members, / 0\/0 .* rootfs\/bin\/busybox$/m);
  const meta = parseYaml((await runCommand("tar", ["-xzOf", file, "metadata.yaml"])).stdout) as { properties: Record<string, string>; templates: unknown };
  assert.equal(meta.properties.stage, "one");
  assert.ok(meta.templates, "the templates' metadata is kept");

  await d.lxc(["launch", "p1", "c2"]);
  assert.equal(await listing(d, "c2", "/srv"), before);
  assert.equal((await d.lxc(["exec", "c2", "--", "hostname"])).stdout, "c2\n", "the templates still apply");
});

test("lodge publish: --compression, --expire, --public, properties, and --reuse moves the alias", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1"]);
  const first = await d.lodge(["publish", "c1", "--alias", "mine", "--compression", "xz", "--expire", "2031-05-01T00:00:00Z", "--public", "k=v"], { allowFail: true });
  assert.equal(first.code, 0, first.stderr);
  const fp1 = /fingerprint: ([0-9a-f]{64})/.exec(first.stdout)![1]!;
  const img1 = JSON.parse((await d.lxc(["query", `/1.0/images/${fp1}`])).stdout) as { public: boolean; expires_at: string; properties: Record<string, string> };
  assert.equal(img1.public, true);
  assert.equal(img1.expires_at, "2031-05-01T00:00:00Z");
  assert.equal(img1.properties.k, "v");
  assert.match((await runCommand("file", [join(d.dir, "images", fp1)])).stdout, /XZ compressed/);

  await d.lxc(["start", "c1"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo two > /root/second"]);
  await d.lxc(["stop", "-f", "c1"]);
  const again = await d.lodge(["publish", "c1", "--alias", "mine"], { allowFail: true });
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /Aliases already exist: mine \(use --reuse/);
  const reused = await d.lodge(["publish", "c1", "--alias", "mine", "--reuse"], { allowFail: true });
  assert.equal(reused.code, 0, reused.stderr);
  const fp2 = /fingerprint: ([0-9a-f]{64})/.exec(reused.stdout)![1]!;
  assert.notEqual(fp2, fp1);
  assert.equal(JSON.parse((await d.lxc(["query", "/1.0/images/aliases/mine"])).stdout).target, fp2);
  const fps = (JSON.parse((await d.lxc(["query", "/1.0/images"])).stdout) as string[]).map((u) => u.split("/").pop());
  assert.ok(!fps.includes(fp1), "the image the alias left, with no alias remaining, is deleted");
  await d.lxc(["launch", "mine", "c3"]);
  assert.equal((await d.lxc(["exec", "c3", "--", "cat", "/root/second"])).stdout, "two\n");

  // A snapshot publishes its own state: a file written after it is not in the image.
  assert.match((await d.lodge(["publish", "c1/snap0", "--alias", "s"], { allowFail: true })).stderr, /Snapshot "snap0" of instance "c1" not found/);
  await d.lxc(["snapshot", "c1", "snap0"]);
  await d.lxc(["start", "c1"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo later > /root/later"]);
  const fromSnap = await d.lodge(["publish", "c1/snap0", "--alias", "s"], { allowFail: true });
  assert.equal(fromSnap.code, 0, fromSnap.stderr);
  await d.lxc(["launch", "s", "c4"]);
  assert.equal((await d.lxc(["exec", "c4", "--", "cat", "/root/second"])).stdout, "two\n");
  assert.notEqual((await d.lxc(["exec", "c4", "--", "test", "-e", "/root/later"], { allowFail: true })).code, 0, "the snapshot's state, not the instance's");
  assert.deepEqual((await readdir(join(d.dir, "images"))).filter((f) => f.startsWith(".")), []);
});
