import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError } from "../../src/api/errors.js";
import type { FileStat } from "../../src/instances/files/fileio.js";
import {
  contentDisposition,
  fileGetAnswer,
  fileHeaders,
  parseFileHeaders,
  parseMode,
  pushHeaders,
  symlinkAnswerTarget,
} from "../../src/instances/files/headers.js";

const bad = (pattern: RegExp) => (e: unknown) => e instanceof ApiError && e.status === 400 && pattern.test(e.message);

test("a push without headers is an overwrite of a file, with owner and mode unset", () => {
  assert.deepEqual(parseFileHeaders({}), { type: "file", write: "overwrite" });
});

test("the lxc client's headers: decimal ids, octal mode with a leading 0", () => {
  const h = { "x-lxd-uid": "1000", "x-lxd-gid": "1001", "x-lxd-mode": "0640", "x-lxd-type": "file", "x-lxd-write": "append" };
  assert.deepEqual(parseFileHeaders(h), { uid: 1000, gid: 1001, mode: 0o640, type: "file", write: "append" });
});

test("header names match case-insensitively, and array values use the first", () => {
  assert.deepEqual(parseFileHeaders({ "X-LXD-Type": "directory", "X-Lxd-Uid": ["5", "6"] }), { uid: 5, type: "directory", write: "overwrite" });
});

test("mode: leading 0 is octal, otherwise decimal, and only the 0777 bits count (LXD 5.0)", () => {
  assert.equal(parseMode("0644"), 0o644);
  assert.equal(parseMode("0"), 0);
  assert.equal(parseMode("00755"), 0o755);
  assert.equal(parseMode("420"), 0o644);
  assert.equal(parseMode("04755"), 0o755, "set-id bits are dropped as LXD drops them");
  assert.equal(parseMode(""), undefined);
  assert.equal(parseMode(undefined), undefined);
  assert.equal(parseMode("-1"), undefined);
});

test("-1 or empty ids mean unset, as LXD reads them", () => {
  assert.deepEqual(parseFileHeaders({ "x-lxd-uid": "-1", "x-lxd-gid": "" }), { type: "file", write: "overwrite" });
});

test("malformed values are a 400 naming the header", () => {
  assert.throws(() => parseFileHeaders({ "x-lxd-uid": "root" }), bad(/X-LXD-uid.*"root"/));
  assert.throws(() => parseFileHeaders({ "x-lxd-gid": "1.5" }), bad(/X-LXD-gid/));
  assert.throws(() => parseFileHeaders({ "x-lxd-uid": "4294967295" }), bad(/X-LXD-uid.*out of range/));
  assert.throws(() => parseFileHeaders({ "x-lxd-mode": "0999" }), bad(/X-LXD-mode.*"0999"/));
  assert.throws(() => parseFileHeaders({ "x-lxd-mode": "rwx" }), bad(/X-LXD-mode/));
  assert.throws(() => parseFileHeaders({ "x-lxd-mode": "0x1ff" }), bad(/X-LXD-mode/));
});

test("unknown type or write mode: LXD's messages", () => {
  assert.throws(() => parseFileHeaders({ "x-lxd-type": "fifo" }), bad(/^Bad file type: fifo$/));
  assert.throws(() => parseFileHeaders({ "x-lxd-write": "prepend" }), bad(/^Bad file write mode: prepend$/));
});

test("GET headers: ids as given, mode as %04o of the permission bits, the type", () => {
  assert.deepEqual(fileHeaders({ uid: 0, gid: 0, mode: 0o4755, type: "file" }), {
    "X-LXD-uid": "0",
    "X-LXD-gid": "0",
    "X-LXD-mode": "0755",
    "X-LXD-type": "file",
  });
  assert.equal(fileHeaders({ uid: 1, gid: 2, mode: 0o7, type: "directory" })["X-LXD-mode"], "0007");
});

test("push headers are what parseFileHeaders reads back", () => {
  const push = { uid: 33, gid: 44, mode: 0o600, type: "symlink" as const, write: "overwrite" as const };
  const lower = Object.fromEntries(Object.entries(pushHeaders(push)).map(([k, v]) => [k.toLowerCase(), v]));
  assert.deepEqual(parseFileHeaders(lower), push);
  assert.deepEqual(pushHeaders({}), {});
});

test("a symlink's GET body is its target, absolute against the link's directory and cleaned", () => {
  assert.equal(symlinkAnswerTarget("/tmp/x", "/etc/shadow"), "/etc/shadow");
  assert.equal(symlinkAnswerTarget("/usr/lib/x", "../share/./y/"), "/usr/share/y");
  assert.equal(symlinkAnswerTarget("/tmp/x", "../../../../etc"), "/etc");
  assert.equal(symlinkAnswerTarget("tmp/x", "y"), "/tmp/y");
});

test("Content-Disposition: LXD's inline;filename=, RFC 5987 for names that need it", () => {
  assert.equal(contentDisposition("/etc/hosts"), "inline;filename=hosts");
  assert.equal(contentDisposition("/tmp/a b"), "inline;filename*=UTF-8''a%20b");
  assert.equal(contentDisposition("/tmp/é\"x"), "inline;filename*=UTF-8''%C3%A9%22x");
  assert.equal(contentDisposition("/"), "inline;filename=file");
});

const st = (over: Partial<FileStat>): FileStat => ({ type: "file", special: false, mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0, ...over });

test("GET answer shapes: raw file, symlink target, sync JSON list for a directory", () => {
  const file = fileGetAnswer("/etc/hostname", st({}));
  assert.equal(file.kind, "file");
  assert.equal(file.headers["Content-Type"], "application/octet-stream");
  assert.equal(file.headers["X-LXD-type"], "file");
  assert.equal(file.headers["Content-Length"], undefined, "a file is sent chunked: it may change after the stat");

  const link = fileGetAnswer("/tmp/x", st({ type: "symlink", mode: 0o777, target: "/etc/shadow" }));
  assert.ok(link.kind === "symlink");
  assert.equal(link.body.toString(), "/etc/shadow");
  assert.equal(link.headers["Content-Length"], "11");
  assert.equal(link.headers["X-LXD-mode"], "0777");

  const dir = fileGetAnswer("/etc", st({ type: "directory", mode: 0o755, entries: ["group", "passwd"] }));
  assert.ok(dir.kind === "directory");
  assert.deepEqual(dir.body, { type: "sync", status: "Success", status_code: 200, operation: "", error_code: 0, error: "", metadata: ["group", "passwd"] });
  assert.equal(dir.headers["X-LXD-type"], "directory");
  assert.equal(dir.headers["Content-Type"], undefined, "the JSON answer sets its own");
});
