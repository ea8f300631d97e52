import assert from "node:assert/strict";
import { test } from "node:test";
import {
  aliasTable,
  findAlias,
  findImage,
  productPaths,
  productsToImages,
  sortImages,
  type ProductsFile,
} from "../../src/images/remotes/simplestreams.js";
import { parseEndpoint } from "../../src/images/remotes/http.js";

const h = (c: string) => c.repeat(64);

/** A products file shaped like images.linuxcontainers.org's, trimmed to what matters. */
const PRODUCTS: ProductsFile = {
  content_id: "images",
  datatype: "image-downloads",
  format: "products:1.0",
  products: {
    "debian:12:amd64:default": {
      aliases: "debian/12/default,debian/12,debian/bookworm",
      arch: "amd64",
      os: "Debian",
      release: "bookworm",
      release_title: "12",
      variant: "default",
      versions: {
        "20240101_05:24": {
          items: {
            "lxd.tar.xz": {
              ftype: "lxd.tar.xz",
              path: "images/debian/bookworm/amd64/default/20240101_05:24/lxd.tar.xz",
              sha256: h("1"),
              size: 100,
              combined_squashfs_sha256: h("a"),
              combined_rootxz_sha256: h("b"),
              "combined_disk-kvm-img_sha256": h("c"),
            },
            "root.squashfs": { ftype: "squashfs", path: "images/debian/bookworm/amd64/default/20240101_05:24/rootfs.squashfs", sha256: h("2"), size: 1000 },
            "root.tar.xz": { ftype: "root.tar.xz", path: "images/debian/bookworm/amd64/default/20240101_05:24/rootfs.tar.xz", sha256: h("3"), size: 900 },
            "disk.qcow2": { ftype: "disk-kvm.img", path: "images/debian/bookworm/amd64/default/20240101_05:24/disk.qcow2", sha256: h("4"), size: 5000 },
            "delta": { ftype: "squashfs.vcdiff", path: "x.vcdiff", sha256: h("5"), size: 1 },
          },
        },
        "20240102_05:24": {
          items: {
            "lxd.tar.xz": { ftype: "lxd.tar.xz", path: "v2/lxd.tar.xz", sha256: h("6"), size: 100, combined_squashfs_sha256: h("d") },
            "root.squashfs": { ftype: "squashfs", path: "v2/rootfs.squashfs", sha256: h("7"), size: 1000 },
          },
        },
        // Not a serial: skipped.
        "latest": { items: {} },
      },
    },
    "debian:12:arm64:default": {
      aliases: "debian/12",
      arch: "arm64",
      os: "Debian",
      release: "bookworm",
      variant: "default",
      support_eol: "2028-06-30",
      versions: {
        "20240101_05:24": {
          items: {
            "lxd_combined.tar.gz": { ftype: "lxd_combined.tar.gz", path: "arm/combined.tar.gz", sha256: h("e"), size: 300 },
          },
        },
      },
    },
    "plan9:4:sparc:default": { aliases: "plan9", arch: "sparc", versions: {} },
  },
};

test("index.json: only image-downloads indices with products", () => {
  assert.deepEqual(
    productPaths({
      format: "index:1.0",
      index: {
        images: { datatype: "image-downloads", path: "streams/v1/images.json", products: ["a"] },
        empty: { datatype: "image-downloads", path: "streams/v1/empty.json", products: [] },
        other: { datatype: "content-download", path: "streams/v1/other.json", products: ["b"] },
      },
    }),
    ["streams/v1/images.json"],
  );
  assert.throws(() => productPaths({} as never), /Invalid simplestreams index/);
});

test("products: one image per metadata + rootfs pair, fingerprints from the combined_*_sha256 fields", () => {
  const images = productsToImages(PRODUCTS);
  const byFp = new Map(images.map((i) => [i.fingerprint, i]));
  assert.equal(images.length, 5);
  const sq = byFp.get(h("a"))!;
  assert.equal(sq.type, "container");
  assert.equal(sq.architecture, "x86_64");
  assert.equal(sq.size, 1100);
  assert.equal(sq.filename, "lxd.tar.xz");
  assert.equal(sq.created_at, "2024-01-01T00:00:00Z");
  assert.deepEqual(sq.files, [
    { part: "metadata", path: "images/debian/bookworm/amd64/default/20240101_05:24/lxd.tar.xz", sha256: h("1"), size: 100 },
    { part: "rootfs", path: "images/debian/bookworm/amd64/default/20240101_05:24/rootfs.squashfs", sha256: h("2"), size: 1000 },
  ]);
  assert.deepEqual(sq.properties, {
    os: "Debian",
    release: "bookworm",
    architecture: "amd64",
    serial: "20240101_05:24",
    description: "Debian 12 amd64 (20240101_05:24)",
    variant: "default",
    type: "squashfs",
  });
  assert.equal(byFp.get(h("b"))!.properties.type, "root.tar.xz");
  const vm = byFp.get(h("c"))!;
  assert.equal(vm.type, "virtual-machine");
  assert.equal(vm.size, 5100);
  const unified = byFp.get(h("e"))!;
  assert.equal(unified.architecture, "aarch64");
  assert.equal(unified.properties.type, "tar.gz");
  assert.deepEqual(unified.files, [{ part: "metadata", path: "arm/combined.tar.gz", sha256: h("e"), size: 300 }]);
  assert.equal(unified.expires_at, "2028-06-30T00:00:00Z");
  assert.ok(!images.some((i) => i.architecture === "sparc"), "unknown architectures are skipped");
});

test("aliases: short names for the host architecture, name/arch for all, newest serial and squashfs first", () => {
  const images = productsToImages(PRODUCTS);
  const table = aliasTable(images, "x86_64");
  assert.equal(findAlias(table, "debian/12", "container").target, h("d"), "the newest serial wins");
  assert.equal(findAlias(table, "debian/12/amd64", "container").target, h("d"));
  assert.equal(findAlias(table, "debian/12", "virtual-machine").target, h("c"));
  assert.equal(findAlias(table, "debian/12/arm64").target, h("e"));
  assert.throws(() => findAlias(table, "debian/12"), /both a container and a virtual-machine/);
  assert.throws(() => findAlias(table, "nosuch"), /not found/);
  // On an arm64 host the short alias names the arm64 image.
  assert.equal(findAlias(aliasTable(images, "aarch64"), "debian/12", "container").target, h("e"));
  // Ordering: newest serial first; squashfs before root.tar.xz within a serial.
  const order = sortImages(images.filter((i) => i.architecture === "x86_64")).map((i) => i.fingerprint);
  assert.deepEqual(order, [h("d"), h("a"), h("b"), h("c")]);
});

test("fingerprint prefixes resolve when unique", () => {
  const images = productsToImages(PRODUCTS);
  assert.equal(findImage(images, "aaaa").fingerprint, h("a"));
  assert.equal(findImage(images, "E".repeat(10)).fingerprint, h("e"));
  assert.throws(() => findImage(images, "f"), /not found/);
});

test("malformed products are refused or skipped, never half-read", () => {
  assert.throws(() => productsToImages({} as never), /Invalid simplestreams products/);
  const noFp = productsToImages({
    products: {
      p: {
        arch: "amd64",
        aliases: "x",
        versions: {
          "20240101": {
            items: {
              m: { ftype: "lxd.tar.xz", path: "m", sha256: h("1"), size: 1 },
              r: { ftype: "squashfs", path: "r", sha256: h("2"), size: 1 },
            },
          },
        },
      },
    },
  });
  assert.deepEqual(noFp, [], "a split image without its combined hash has no fingerprint and is skipped");
});

test("endpoints: https, http, unix sockets; nothing else", () => {
  assert.equal(parseEndpoint("https://images.example.org").base.toString(), "https://images.example.org/");
  assert.equal(parseEndpoint("https://h:8443/sub").base.toString(), "https://h:8443/sub/");
  assert.equal(parseEndpoint("unix:///var/lib/lodge/unix.socket").socketPath, "/var/lib/lodge/unix.socket");
  assert.throws(() => parseEndpoint("unix:relative.sock"), /absolute path/);
  assert.throws(() => parseEndpoint("ftp://x"), /only https and http/);
  assert.throws(() => parseEndpoint("http://x", { allowHttp: false }), /only https are supported/);
  assert.throws(() => parseEndpoint(""), /server is missing/);
});
