import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { detectFormat, splitRootfsType } from "../../src/images/format.js";
import { checkExpectedFingerprint, fingerprintOf, isFingerprintPrefix } from "../../src/images/fingerprint.js";
import { byteSize, progressText } from "../../src/images/progress.js";
import { matchFilter, parseFilter } from "../../src/api/filter.js";

function head(bytes: number[] | string, at = 0): Buffer {
  const b = Buffer.alloc(263);
  (typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Buffer.from(bytes)).copy(b, at);
  return b;
}

test("formats are recognised from their magic numbers", () => {
  assert.deepEqual(detectFormat(gzipSync("x")), { kind: "tar", compression: "gzip", ext: ".tar.gz" });
  assert.equal(detectFormat(head([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))?.ext, ".tar.xz");
  assert.equal(detectFormat(head([0x28, 0xb5, 0x2f, 0xfd]))?.ext, ".tar.zst");
  assert.equal(detectFormat(head("BZh9"))?.ext, ".tar.bz2");
  assert.equal(detectFormat(head([0x5d, 0x00, 0x00]))?.ext, ".tar.lzma");
  assert.deepEqual(detectFormat(head("ustar", 257)), { kind: "tar", compression: "none", ext: ".tar" });
  assert.deepEqual(detectFormat(head("hsqs")), { kind: "squashfs", ext: ".squashfs" });
  assert.deepEqual(detectFormat(head([0x51, 0x46, 0x49, 0xfb])), { kind: "qcow2", ext: ".qcow2" });
  assert.equal(detectFormat(head("PK\x03\x04")), undefined);
  assert.equal(detectFormat(Buffer.from("hs")), undefined, "short heads are not misread");
});

test("a split image's type follows its rootfs format", () => {
  const sq = detectFormat(head("hsqs"))!;
  const qcow = detectFormat(head([0x51, 0x46, 0x49, 0xfb]))!;
  assert.equal(splitRootfsType(sq), "container");
  assert.equal(splitRootfsType(qcow), "virtual-machine");
  assert.equal(splitRootfsType(qcow, "virtual-machine"), "virtual-machine");
  assert.throws(() => splitRootfsType(sq, "virtual-machine"), /must be a qcow2 disk, got squashfs/);
  assert.throws(() => splitRootfsType(qcow, "container"), /got a qcow2 disk/);
});

test("the fingerprint of a split image is the SHA-256 of metadata then rootfs bytes", () => {
  const meta = Buffer.from("metadata-bytes");
  const rootfs = Buffer.from("rootfs-bytes");
  // sha256("metadata-bytesrootfs-bytes"), computed independently.
  assert.equal(fingerprintOf(meta, rootfs), fingerprintOf(Buffer.concat([meta, rootfs])));
  assert.notEqual(fingerprintOf(meta, rootfs), fingerprintOf(rootfs, meta));
  assert.equal(fingerprintOf(Buffer.from("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  checkExpectedFingerprint("ab".repeat(32), undefined);
  checkExpectedFingerprint("ab".repeat(32), "AB".repeat(32));
  assert.throws(() => checkExpectedFingerprint("ab".repeat(32), "cd".repeat(32)), /fingerprint mismatch/);
  assert.ok(isFingerprintPrefix("a1"));
  assert.ok(!isFingerprintPrefix("x1"));
  assert.ok(!isFingerprintPrefix(""));
});

test("progress text reads like LXD's", () => {
  assert.equal(byteSize(999), "999B");
  assert.equal(byteSize(1234567), "1.23MB");
  assert.equal(progressText({ part: "image", bytes: 12_340_000, speed: 1_200_000 }), "12.34MB (1.20MB/s)");
  assert.equal(progressText({ part: "image", bytes: 5, total: 10, percent: 50, speed: 5 }), "50% (5B/s)");
});

test("filter= clauses: eq, ne, not, and, or, nested fields, quotes", () => {
  const img = { public: true, type: "container", properties: { os: "busybox", "user.x": "a b" } };
  const m = (f: string) => matchFilter(img, parseFilter(f));
  assert.ok(m("public eq true"));
  assert.ok(!m("public eq false"));
  assert.ok(m("type ne virtual-machine"));
  assert.ok(m("not type eq virtual-machine"));
  assert.ok(m("properties.os eq busybox and public eq true"));
  assert.ok(!m("properties.os eq debian and public eq true"));
  assert.ok(m("properties.os eq debian or public eq true"));
  assert.ok(m('properties.user.x eq "a b"'));
  assert.throws(() => parseFilter("public is true"), /unsupported operator "is"/);
  assert.throws(() => parseFilter("public eq"), /incomplete clause/);
  assert.throws(() => parseFilter("public eq true type eq x"), /expected "and" or "or"/);
});
