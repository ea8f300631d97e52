import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import type { TestContext } from "node:test";
import { runCommand } from "./daemon.js";
import { scratchDir } from "./images.js";

/** A product of the test image server (os/release/arch/variant, as images.linuxcontainers.org names them). */
export interface ProductSpec {
  os: string;
  release: string;
  arch: string;
  variant: string;
  aliases: string[];
}

export interface SplitFiles {
  metadata: string;
  squashfs: string;
}

/** A self-signed certificate for 127.0.0.1 (usable as its own CA by Go, Node and curl). */
export async function selfSignedCert(dir: string): Promise<{ cert: string; key: string; certPath: string }> {
  const certPath = join(dir, "server.crt");
  const keyPath = join(dir, "server.key");
  await runCommand("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", keyPath, "-out", certPath,
  ]);
  return { cert: await readFile(certPath, "utf8"), key: await readFile(keyPath, "utf8"), certPath };
}

/**
 * A loopback image server for tests: a simplestreams tree (streams/v1/index.json, images.json
 * and the image files) written to a temp directory and served by a plain static file server,
 * plus LXD "url"-type endpoints (HEAD answers with LXD-Image-URL / LXD-Image-Hash). Closed, and
 * its directory removed, when the test ends.
 */
export class SimpleStreamsServer {
  readonly products = new Map<string, { spec: ProductSpec; versions: Record<string, unknown> }>();
  readonly requests: string[] = [];
  private readonly direct = new Map<string, { file: string; hash: string }>();
  url = "";

  private constructor(
    readonly root: string,
    private readonly server: http.Server,
  ) {}

  static async start(t: TestContext, opts: { tls?: { cert: string; key: string } } = {}): Promise<SimpleStreamsServer> {
    const root = await scratchDir(t, "lodge-ss-");
    let self!: SimpleStreamsServer;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void self.handle(req, res);
    const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(handler);
    self = new SimpleStreamsServer(root, server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    self.url = `${opts.tls ? "https" : "http"}://127.0.0.1:${(server.address() as AddressInfo).port}`;
    t.after(() => self.close());
    await self.writeCatalogue();
    return self;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Publishes a split (lxd.tar.xz + squashfs) version of a product; returns its fingerprint. */
  async addSplit(spec: ProductSpec, serial: string, files: SplitFiles): Promise<string> {
    const key = `${spec.os}:${spec.release}:${spec.arch}:${spec.variant}`;
    const dir = `images/${spec.os}/${spec.release}/${spec.arch}/${spec.variant}/${serial.replace(":", "_")}`;
    await mkdir(join(this.root, dir), { recursive: true });
    await copyFile(files.metadata, join(this.root, dir, "lxd.tar.xz"));
    await copyFile(files.squashfs, join(this.root, dir, "rootfs.squashfs"));
    const meta = await describe(join(this.root, dir, "lxd.tar.xz"));
    const root = await describe(join(this.root, dir, "rootfs.squashfs"));
    const fingerprint = await sha256(join(this.root, dir, "lxd.tar.xz"), join(this.root, dir, "rootfs.squashfs"));
    const product = this.products.get(key) ?? { spec, versions: {} };
    product.versions[serial] = {
      items: {
        "lxd.tar.xz": { ftype: "lxd.tar.xz", path: `${dir}/lxd.tar.xz`, ...meta, combined_squashfs_sha256: fingerprint, combined_sha256: fingerprint },
        "root.squashfs": { ftype: "squashfs", path: `${dir}/rootfs.squashfs`, ...root },
      },
    };
    this.products.set(key, product);
    await this.writeCatalogue();
    return fingerprint;
  }

  /** Serves `file` as an LXD "url" image at /direct/<name>; returns the URL to give lodged. */
  async addDirect(name: string, file: string, opts: { hash?: string } = {}): Promise<string> {
    await mkdir(join(this.root, "files"), { recursive: true });
    await copyFile(file, join(this.root, "files", name));
    this.direct.set(name, { file: `files/${name}`, hash: opts.hash ?? (await sha256(file)) });
    return `${this.url}/direct/${name}`;
  }

  /** Flips one byte in the middle of a served file (its published sha256 no longer matches). */
  async corrupt(relPath: string): Promise<void> {
    const p = join(this.root, relPath);
    const buf = await readFile(p);
    const i = Math.floor(buf.length / 2);
    buf[i] = buf[i]! ^ 0xff;
    await writeFile(p, buf);
  }

  private async writeCatalogue(): Promise<void> {
    await mkdir(join(this.root, "streams/v1"), { recursive: true });
    const products: Record<string, unknown> = {};
    for (const [key, { spec, versions }] of this.products)
      products[key] = {
        aliases: spec.aliases.join(","),
        arch: spec.arch,
        os: spec.os,
        release: spec.release,
        release_title: spec.release,
        variant: spec.variant,
        versions,
      };
    await writeFile(
      join(this.root, "streams/v1/images.json"),
      JSON.stringify({ content_id: "images", datatype: "image-downloads", format: "products:1.0", products }, null, 1),
    );
    await writeFile(
      join(this.root, "streams/v1/index.json"),
      JSON.stringify({
        format: "index:1.0",
        index: { images: { datatype: "image-downloads", path: "streams/v1/images.json", format: "products:1.0", products: Object.keys(products) } },
      }),
    );
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    this.requests.push(`${req.method} ${path}`);
    const direct = /^\/direct\/([^/]+)$/.exec(path);
    if (direct && this.direct.has(direct[1]!)) {
      const d = this.direct.get(direct[1]!)!;
      res.setHeader("LXD-Image-Hash", d.hash);
      res.setHeader("LXD-Image-URL", `${this.url}/${d.file}`);
      return void res.end();
    }
    const rel = normalize(path).replace(/^\/+/, "");
    if (rel.startsWith("..")) return void res.writeHead(403).end();
    const file = join(this.root, rel);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return void res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    res.writeHead(200, { "content-length": String(st.size), "content-type": "application/octet-stream" });
    if (req.method === "HEAD") return void res.end();
    createReadStream(file).pipe(res);
  }
}

async function describe(p: string): Promise<{ sha256: string; size: number }> {
  return { sha256: await sha256(p), size: (await stat(p)).size };
}

async function sha256(...paths: string[]): Promise<string> {
  const h = createHash("sha256");
  for (const p of paths) h.update(await readFile(p));
  return h.digest("hex");
}
