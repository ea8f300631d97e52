// An image copied from an LXD server over https://: a loopback HTTPS server with a
// self-signed certificate made at test time (openssl) speaks the subset of the LXD API a pull
// uses (alias, image, export as a unified tarball or as multipart metadata + rootfs). No network.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Operation } from "../../src/api/operation.js";
import type { Image } from "../../src/images/types.js";
import { TestDaemon } from "../helpers/daemon.js";
import { buildBusyboxImages, scratchDir, sha256Files } from "../helpers/images.js";
import { selfSignedCert } from "../helpers/simplestreams.js";

interface Published {
  fingerprint: string;
  /** A unified tarball, or a split image's metadata tarball and rootfs. */
  files: { unified: string } | { metadata: string; rootfs: string };
  aliases: string[];
}

/** The LXD endpoints an image pull reads, over TLS, from a fixed set of public images. */
async function lxdImageServer(t: TestContext, tls: { cert: string; key: string }, images: Published[]) {
  const requests: string[] = [];
  const sync = (res: import("node:http").ServerResponse, metadata: unknown) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "sync", status: "Success", status_code: 200, operation: "", error_code: 0, error: "", metadata }));
  };
  const notFound = (res: import("node:http").ServerResponse) => {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "error", error: "not found", error_code: 404, metadata: null }));
  };
  const server = https.createServer({ cert: tls.cert, key: tls.key }, async (req, res) => {
    const path = new URL(req.url!, "https://x").pathname;
    requests.push(`${req.method} ${path}`);
    let m = /^\/1\.0\/images\/aliases\/([^/]+)$/.exec(path);
    if (m) {
      const img = images.find((i) => i.aliases.includes(decodeURIComponent(m![1]!)));
      return img ? sync(res, { name: m[1], description: "", target: img.fingerprint, type: "container" }) : notFound(res);
    }
    m = /^\/1\.0\/images\/([0-9a-f]{64})(\/export)?$/.exec(path);
    const img = m && images.find((i) => i.fingerprint === m![1]);
    if (!m || !img) return notFound(res);
    if (!m[2]) {
      const files = "unified" in img.files ? [img.files.unified] : [img.files.metadata, img.files.rootfs];
      let size = 0;
      for (const f of files) size += (await readFile(f)).length;
      return sync(res, {
        fingerprint: img.fingerprint, type: "container", architecture: "x86_64", public: true, size,
        filename: "busybox.tar.gz", created_at: "2024-01-01T00:00:00Z", expires_at: "1970-01-01T00:00:00Z",
        uploaded_at: "2024-01-01T00:00:00Z", properties: { os: "busybox", description: "over https" },
        aliases: img.aliases.map((name) => ({ name, description: "" })), auto_update: false, cached: false,
      });
    }
    if ("unified" in img.files) {
      const body = await readFile(img.files.unified);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
      return res.end(body);
    }
    // A split image is exported as multipart/form-data: "metadata" then "rootfs", as LXD does.
    const boundary = "lodge-test-boundary";
    const part = (name: string, file: string, data: Buffer) =>
      Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${file}"\r\nContent-Type: application/octet-stream\r\n\r\n`), data, Buffer.from("\r\n")]);
    const body = Buffer.concat([
      part("metadata", "meta.tar.xz", await readFile(img.files.metadata)),
      part("rootfs", "rootfs.squashfs", await readFile(img.files.rootfs)),
      Buffer.from(`--${boundary}--\r\n`),
    ]);
    res.writeHead(200, { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function pull(d: TestDaemon, body: unknown): Promise<Operation> {
  return d.client.wait(await d.client.post<Operation>("/1.0/images", body));
}

test("image copy from an LXD server over https: unified and split exports, the certificate pinned and checked", async (t) => {
  const pki = await selfSignedCert(await scratchDir(t, "lodge-pki-"));
  const other = await selfSignedCert(await scratchDir(t, "lodge-pki-"));
  const img = await buildBusyboxImages(t);
  const split = { fingerprint: img.splitFingerprint, files: { metadata: img.metadata, rootfs: img.squashfs }, aliases: ["bb-split"] };
  const unified = { fingerprint: img.unifiedFingerprint, files: { unified: img.unified }, aliases: ["bb"] };
  assert.equal(await sha256Files(img.unified), unified.fingerprint);
  const lxd = await lxdImageServer(t, pki, [unified, split]);
  const d = await TestDaemon.start(t);
  const source = { type: "image", protocol: "lxd", server: lxd.url, alias: "bb" };

  // An unknown self-signed certificate is refused, a pinned one must match; nothing is stored.
  await assert.rejects(pull(d, { source }), /certificate/i);
  await assert.rejects(pull(d, { source: { ...source, certificate: other.cert } }), /does not match/);
  assert.deepEqual(await d.client.get<string[]>("/1.0/images"), []);

  const op = await pull(d, { source: { ...source, certificate: pki.cert }, aliases: [{ name: "copied" }] });
  assert.equal(op.metadata?.fingerprint, unified.fingerprint);
  const got = await d.client.get<Image>(`/1.0/images/${unified.fingerprint}`);
  assert.deepEqual(got.update_source, { alias: "bb", certificate: pki.cert, protocol: "lxd", server: lxd.url, image_type: "container" });
  assert.deepEqual(got.aliases, [{ name: "copied", description: "" }]);
  assert.ok(lxd.requests.includes("GET /1.0/images/aliases/bb"));
  assert.ok(lxd.requests.includes(`GET /1.0/images/${unified.fingerprint}/export`));

  // A split image comes as multipart (metadata, then rootfs) and is stored as the same split image.
  const sop = await pull(d, { source: { ...source, alias: "bb-split", certificate: pki.cert } });
  assert.equal(sop.metadata?.fingerprint, split.fingerprint);
  const s = await d.client.get<Image>(`/1.0/images/${split.fingerprint}`);
  assert.equal(s.fingerprint, split.fingerprint);
  assert.equal((await d.client.get<string[]>("/1.0/images")).length, 2);

  // The exported copy is byte for byte what the server had.
  const out = await scratchDir(t, "lodge-export-");
  await d.lxc(["image", "export", unified.fingerprint, `${out}/x`]);
  assert.equal(await sha256Files(`${out}/x.tar.gz`), unified.fingerprint);
});
