import test from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Image } from "../../src/images/types.js";
import { imageColumns, matchesFilters, uploadDate } from "../../src/cli/image-columns.js";
import { copyRequest } from "../../src/cli/image-copy.js";
import { parseImagePut } from "../../src/cli/image-edit.js";
import { exportTargets, extensionOf } from "../../src/cli/image-export.js";
import { looksLikeFingerprint, parseImageRef } from "../../src/cli/image-ref.js";
import { listTarget } from "../../src/cli/image-show.js";
import {
  configPath,
  defaultConfig,
  loadRemoteConfig,
  saveRemoteConfig,
  validateRemoteConfig,
  type RemoteConfig,
} from "../../src/cli/remote-config.js";

const withImages = (): RemoteConfig =>
  validateRemoteConfig({
    remotes: {
      images: { addr: "https://images.example.org/", protocol: "simplestreams", public: true },
      lx: { addr: "https://10.0.0.1:8443" },
    },
  });

test("an absent or empty config is just the local remote, which is the default", () => {
  for (const raw of [undefined, null, {}]) {
    const cfg = validateRemoteConfig(raw);
    assert.deepEqual(cfg, defaultConfig());
    assert.equal(cfg.defaultRemote, "local");
    assert.deepEqual(cfg.remotes.local, { addr: "unix://", protocol: "lxd", public: false });
  }
});

test("a valid config gets defaults filled in and trailing slashes trimmed", () => {
  const cfg = withImages();
  assert.deepEqual(cfg.remotes.images, { addr: "https://images.example.org", protocol: "simplestreams", public: true });
  assert.deepEqual(cfg.remotes.lx, { addr: "https://10.0.0.1:8443", protocol: "lxd", public: false });
  assert.equal(validateRemoteConfig({ "default-remote": "lx", remotes: { lx: { addr: "http://h" } } }).defaultRemote, "lx");
});

test("bad configs are refused with a message naming the bad part", () => {
  const cases: [unknown, RegExp][] = [
    [[], /expected a YAML map/],
    [{ remote: {} }, /unknown key "remote"/],
    [{ remotes: [] }, /"remotes" must be a map/],
    [{ remotes: { "a:b": { addr: "https://x" } } }, /Invalid remote name "a:b"/],
    [{ remotes: { x: "https://x" } }, /remote "x" must be a map/],
    [{ remotes: { x: {} } }, /remote "x" needs an addr/],
    [{ remotes: { x: { addr: "not a url" } } }, /Invalid address "not a url" for remote "x"/],
    [{ remotes: { x: { addr: "ftp://h" } } }, /Invalid address "ftp:\/\/h" for remote "x": use https:\/\/, http:\/\/ or unix:/],
    [{ remotes: { x: { addr: "unix://relative.sock" } } }, /give the socket's absolute path/],
    [{ remotes: { x: { addr: "https://h", protocol: "oci" } } }, /Invalid protocol "oci" for remote "x"/],
    [{ remotes: { x: { addr: "https://h", public: "yes" } } }, /public must be true or false/],
    [{ remotes: { x: { addr: "https://h", token: "t" } } }, /remote "x" has unknown key "token"/],
    [{ remotes: { local: { addr: "https://h" } } }, /remote "local" is the daemon's unix socket/],
    [{ "default-remote": "nowhere" }, /default-remote "nowhere" is not a configured remote/],
  ];
  for (const [raw, re] of cases) assert.throws(() => validateRemoteConfig(raw, "cfg.yml"), re, JSON.stringify(raw));
  // Another daemon on this host, by its socket.
  const other = validateRemoteConfig({ remotes: { other: { addr: "unix:///run/other/unix.socket" } } });
  assert.equal(other.remotes.other?.addr, "unix:///run/other/unix.socket");
});

test("the config file path: $LODGE_CONF, else XDG or ~/.config/lodge/config.yml", () => {
  assert.equal(configPath({ LODGE_CONF: "/x/c.yml" }), "/x/c.yml");
  assert.equal(configPath({ XDG_CONFIG_HOME: "/xdg" }), "/xdg/lodge/config.yml");
  assert.equal(configPath({ HOME: "/home/u" }), "/home/u/.config/lodge/config.yml");
});

test("the config saves and loads back, privately, without the implicit local remote", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-conf-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "sub", "config.yml");
  assert.deepEqual(await loadRemoteConfig(path), defaultConfig(), "a missing file is the default");
  const cfg = withImages();
  cfg.defaultRemote = "images";
  await saveRemoteConfig(cfg, path);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const text = await readFile(path, "utf8");
  assert.match(text, /^default-remote: images$/m);
  assert.doesNotMatch(text, /local/);
  assert.deepEqual(await loadRemoteConfig(path), cfg);
  await writeFile(path, "remotes: [unclosed");
  await assert.rejects(loadRemoteConfig(path), new RegExp(`Invalid YAML in ${path}`));
});

test("image references: [remote:]name, default remote when none, unknown remotes named", () => {
  const cfg = withImages();
  assert.deepEqual(parseImageRef("bb", cfg), { remote: "local", name: "bb" });
  assert.deepEqual(parseImageRef("images:debian/12", cfg), { remote: "images", name: "debian/12" });
  assert.deepEqual(parseImageRef("local:", cfg), { remote: "local", name: "" });
  assert.deepEqual(parseImageRef("lx:a:b", cfg), { remote: "lx", name: "a:b" });
  assert.throws(() => parseImageRef("nope:bb", cfg), /Remote "nope" doesn't exist/);
  cfg.defaultRemote = "images";
  assert.deepEqual(parseImageRef("alpine", cfg), { remote: "images", name: "alpine" });
  assert.ok(looksLikeFingerprint("47e0E54f"));
  assert.ok(!looksLikeFingerprint("bb-1"));
});

test("image list words: a leading REMOTE: (before any =) is the remote, the rest are filters", () => {
  const cfg = withImages();
  assert.deepEqual(listTarget([], cfg), { remote: "local", filters: [] });
  assert.deepEqual(listTarget(["images:"], cfg), { remote: "images", filters: [] });
  assert.deepEqual(listTarget(["images:debian", "os=x"], cfg), { remote: "images", filters: ["debian", "os=x"] });
  assert.deepEqual(listTarget(["url=http://x", "bb"], cfg), { remote: "local", filters: ["url=http://x", "bb"] });
  assert.throws(() => listTarget(["nope:"], cfg), /Remote "nope" doesn't exist/);
});

test("image copy maps the remote into the source of POST /1.0/images", () => {
  const cfg = withImages();
  assert.deepEqual(copyRequest("images:debian/12", "local:", cfg, { alias: ["deb"], copyAliases: true, autoUpdate: true }), {
    source: { type: "image", mode: "pull", server: "https://images.example.org", protocol: "simplestreams", alias: "debian/12" },
    aliases: [
      { name: "deb", description: "" },
      { name: "debian/12", description: "" },
    ],
    auto_update: true,
  });
  const fp = "47E0E54FB2B9F4E2599092DA63ADABFEE7245D2927031BC92547351642F8EF06";
  const byFp = copyRequest(`lx:${fp}`, "local:", cfg, { copyAliases: true });
  assert.deepEqual(byFp.source, { type: "image", mode: "pull", server: "https://10.0.0.1:8443", protocol: "lxd", fingerprint: fp.toLowerCase() });
  assert.deepEqual(byFp.aliases, []);
  assert.throws(() => copyRequest("images:x", "images:", cfg), /Cannot copy to remote "images"/);
  assert.throws(() => copyRequest("images:x", "local:name", cfg), /name only the remote/);
  assert.throws(() => copyRequest("bb", "local:", cfg), /already on the local daemon/);
  assert.throws(() => copyRequest("images:", "local:", cfg), /No image in "images:"/);
  assert.throws(() => copyRequest("gone:x", "local:", cfg), /Remote "gone" doesn't exist/);
});

const image = (over: Partial<Image> = {}): Image => ({
  fingerprint: "47e0e54fb2b9f4e2599092da63adabfee7245d2927031bc92547351642f8ef06",
  aliases: [{ name: "bb", description: "" }, { name: "busybox-1", description: "" }],
  architecture: "x86_64",
  cached: false,
  filename: "bb.tar.xz",
  size: 893_000,
  type: "container",
  created_at: "2024-01-31T14:05:00Z",
  last_used_at: "0001-01-01T00:00:00Z",
  uploaded_at: "2024-01-31T14:05:00Z",
  auto_update: false,
  properties: { os: "busybox", release: "1.35.0", description: "BusyBox" },
  public: false,
  expires_at: "0001-01-01T00:00:00Z",
  profiles: ["default"],
  ...over,
});

test("image list columns and filters behave as lxc's", () => {
  const img = image();
  assert.deepEqual(
    imageColumns().map((c) => [c.header, c.value(img)]),
    [
      ["ALIAS", "bb (1 more)"],
      ["FINGERPRINT", "47e0e54fb2b9"],
      ["PUBLIC", "no"],
      ["DESCRIPTION", "BusyBox"],
      ["ARCHITECTURE", "x86_64"],
      ["TYPE", "CONTAINER"],
      ["SIZE", "0.85MB"],
      ["UPLOAD DATE", "Jan 31, 2024 at 2:05pm (UTC)"],
    ],
  );
  assert.equal(imageColumns("LF")[0]!.value(img), "bb\nbusybox-1");
  assert.throws(() => imageColumns("lz"), /Invalid column "z" in "lz"/);
  assert.equal(uploadDate("2024-01-31T00:07:00Z"), "Jan 31, 2024 at 12:07am (UTC)");
  assert.ok(matchesFilters(img, []));
  assert.ok(matchesFilters(img, ["os=busybox", "busy", "47e0"]));
  assert.ok(matchesFilters(img, ["release=1\\.35.*", "type=container"]));
  assert.ok(!matchesFilters(img, ["os=debian"]));
  assert.ok(!matchesFilters(img, ["os=busy"]), "values are anchored");
  assert.ok(!matchesFilters(img, ["alpine"]));
});

test("edited YAML: writable fields only, properties as strings", async () => {
  assert.deepEqual(await parseImagePut("public: true\nproperties:\n  n: 12\n  e:\n"), { public: true, properties: { n: "12", e: "" } });
  assert.deepEqual(await parseImagePut("# nothing\n"), {});
  await assert.rejects(parseImagePut("fingerprint: abc\n"), /"fingerprint" cannot be edited/);
  await assert.rejects(parseImagePut("- a\n"), /expected a map/);
  await assert.rejects(parseImagePut("a: [\n"), /Invalid YAML/);
});

test("export file names: LXD's inside a directory, else the target plus the extension", async () => {
  assert.equal(extensionOf("meta-abc.tar.xz"), ".tar.xz");
  assert.equal(extensionOf("/x.y/abc"), "");
  const dir = tmpdir();
  assert.deepEqual(await exportTargets(dir, ["abc.tar.xz"]), [join(dir, "abc.tar.xz")]);
  assert.deepEqual(await exportTargets("/nonexistent/out", ["meta-abc.tar.xz", "abc.squashfs"]), [
    "/nonexistent/out.tar.xz",
    "/nonexistent/out.root.squashfs",
  ]);
});
