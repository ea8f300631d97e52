// `lxc launch <remote>:<alias>`: the instance's image comes from another server (a simplestreams
// tree served over https on loopback): pulled into lodged's store as a cached image inside the
// create operation, with download progress, then launched; a second launch reuses it; a missing
// image is a clear error that leaves nothing behind.
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { Event } from "../../src/api/event.js";
import type { Operation } from "../../src/api/operation.js";
import type { Image } from "../../src/images/types.js";
import { TestDaemon } from "../helpers/daemon.js";
import { buildBusyboxImages, scratchDir } from "../helpers/images.js";
import { selfSignedCert, SimpleStreamsServer, type ProductSpec } from "../helpers/simplestreams.js";

const BUSYBOX: ProductSpec = { os: "busybox", release: "1", arch: "amd64", variant: "default", aliases: ["busybox/1", "busybox"] };

test("lxc launch from a simplestreams remote: pulled as a cached image with progress, launched, reused; a missing alias leaves nothing", async (t) => {
  const pki = await selfSignedCert(await scratchDir(t, "lodge-pki-"));
  const ss = await SimpleStreamsServer.start(t, { tls: pki });
  const img = await buildBusyboxImages(t);
  const fp = await ss.addSplit(BUSYBOX, "20240101_00:00", { metadata: img.metadata, squashfs: img.squashfs });
  process.env.NODE_EXTRA_CA_CERTS = pki.certPath;
  const d = await TestDaemon.start(t).finally(() => delete process.env.NODE_EXTRA_CA_CERTS);
  const env = { SSL_CERT_FILE: pki.certPath };
  await mkdir(join(d.dir, ".lxc-client"), { recursive: true });
  await d.lxc(["remote", "add", "ss", ss.url, "--protocol", "simplestreams", "--public"], { env });

  const progress: string[] = [];
  const sub = await d.client.events(
    (e: Event) => {
      const op = e.metadata as Operation;
      if (op.description === "Creating instance" && typeof op.metadata?.download_progress === "string") progress.push(op.metadata.download_progress);
    },
    { types: ["operation"] },
  );
  t.after(() => sub.close());
  await d.lxc(["launch", "ss:busybox/1", "c1"], { env });
  sub.close();
  assert.equal((await d.lxc(["exec", "c1", "--", "echo", "from the remote image"])).stdout, "from the remote image\n");
  const inst = await d.client.get<{ config: Record<string, string>; status: string }>("/1.0/instances/c1");
  assert.equal(inst.status, "Running");
  assert.equal(inst.config["volatile.base_image"], fp);
  assert.equal(inst.config["image.os"], "busybox");
  const [cached] = await d.client.get<Image[]>("/1.0/images?recursion=1");
  assert.equal(cached?.fingerprint, fp);
  assert.equal(cached?.cached, true, "an image pulled for an instance is a cached image");
  assert.equal(cached?.auto_update, true);
  assert.deepEqual(cached?.update_source, { alias: "busybox/1", certificate: "", protocol: "simplestreams", server: ss.url, image_type: "container" });
  assert.ok(progress.some((p) => /^rootfs: \d+% /.test(p)), `download progress in the create operation: ${progress.join(" | ")}`);

  // A second launch of the same alias: the local copy serves, nothing is downloaded again.
  const downloads = () => ss.requests.filter((r) => r.endsWith("rootfs.squashfs")).length;
  const before = downloads();
  await d.lxc(["launch", "ss:busybox/1", "c2"], { env });
  assert.equal(downloads(), before);
  assert.equal((await d.client.get<Image[]>("/1.0/images?recursion=1")).length, 1);
  // Our own client sends the same request for REMOTE:ALIAS.
  const conf = { LODGE_CONF: join(d.dir, "lodge-client.yml") };
  await d.lodge(["remote", "add", "ss", ss.url, "--protocol", "simplestreams", "--public"], { env: conf });
  await d.lodge(["launch", "ss:busybox", "c4"], { env: conf });
  assert.equal((await d.lodge(["exec", "c4", "--", "echo", "lodge too"])).stdout, "lodge too\n");

  // An alias the server does not have: a clear error, no instance, no volume.
  const bad = await d.lxc(["launch", "ss:nosuch/9", "c3"], { env, allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /nosuch\/9.*not found|not found.*nosuch\/9/i);
  const names = (await d.client.get<string[]>("/1.0/instances")).map((u) => u.split("/").pop());
  assert.deepEqual(names.sort(), ["c1", "c2", "c4"]);
  const volumes = await readdir(join(d.dir, "storage-pools/default/containers")).catch(() => [] as string[]);
  assert.deepEqual(volumes.sort(), ["c1", "c2", "c4"]);
  await d.lxc(["delete", "--force", "c1", "c2", "c4"]);
});
