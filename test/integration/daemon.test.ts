import test from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { spawn } from "node:child_process";
import { stat, readFile, access } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LODGED, TestDaemon, runCommand } from "../helpers/daemon.js";
import type { Server } from "../../src/api/server.js";

/** A request with full control over method, headers and body bytes. */
function rawRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("GET / and GET /1.0 answer in LXD's envelope with the host's real facts", async (t) => {
  const d = await TestDaemon.start(t);
  const root = await rawRequest(d.socket, "GET", "/");
  assert.deepEqual(root.json, {
    type: "sync",
    status: "Success",
    status_code: 200,
    operation: "",
    error_code: 0,
    error: "",
    metadata: ["/1.0"],
  });
  const server = await d.client.get<Server>("/1.0");
  assert.equal(server.api_version, "1.0");
  assert.equal(server.auth, "trusted");
  assert.ok(server.api_extensions.includes("etag"));
  assert.equal(server.environment.kernel_version, os.release());
  assert.equal(server.environment.kernel_architecture, os.machine());
  assert.ok(server.environment.architectures.includes(os.machine()));
  const lxcVersion = (await runCommand("lxc-start", ["--version"])).stdout.trim();
  assert.match(server.environment.driver, /\blxc\b/);
  assert.ok(server.environment.driver_version.includes(lxcVersion), `liblxc ${lxcVersion} reported`);
  // Only drivers that work are named: QEMU's where it is installed (scripts/setup.sh installs it).
  const qemu = await runCommand("qemu-system-x86_64", ["--version"], { allowFail: true }).catch(() => undefined);
  const qemuVersion = /version (\d+\.\d+\.\d+)/.exec(qemu?.stdout ?? "")?.[1];
  assert.equal(server.environment.driver, qemuVersion ? "lxc | qemu" : "lxc");
  assert.equal(server.environment.driver_version, qemuVersion ? `${lxcVersion} | ${qemuVersion}` : lxcVersion);
  assert.ok(server.api_extensions.includes("server_instance_driver_operational"));
  assert.equal(server.environment.server_pid, d.proc.pid);
});

test("bad requests get LXD-shaped 4xx errors and change nothing", async (t) => {
  const d = await TestDaemon.start(t);
  await d.client.patch("/1.0", { config: { "user.keep": "yes" } });
  const before = await d.client.get<Server>("/1.0");

  const unknown = await rawRequest(d.socket, "GET", "/1.0/nope");
  assert.equal(unknown.status, 404);
  assert.deepEqual(
    { type: unknown.json.type, error_code: unknown.json.error_code, error: unknown.json.error },
    { type: "error", error_code: 404, error: "not found" },
  );

  const malformed = await rawRequest(d.socket, "PUT", "/1.0", "{not json", { "content-type": "application/json" });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.type, "error");
  assert.match(String(malformed.json.error), /Invalid JSON/);

  const big = Buffer.alloc(9 * 1024 * 1024, "a");
  const tooBig = await rawRequest(d.socket, "PUT", "/1.0", big, { "content-type": "application/json" });
  assert.equal(tooBig.status, 413);
  assert.match(String(tooBig.json.error), /too large/);

  const wrongMethod = await rawRequest(d.socket, "DELETE", "/1.0");
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.json.error_code, 405);

  const badShape = await rawRequest(d.socket, "PUT", "/1.0", JSON.stringify({ config: "x" }), {
    "content-type": "application/json",
  });
  assert.equal(badShape.status, 400);
  assert.match(String(badShape.json.error), /config must be object/);

  const badKey = await rawRequest(d.socket, "PATCH", "/1.0", JSON.stringify({ config: { "core.nonsense": "1" } }), {
    "content-type": "application/json",
  });
  assert.equal(badKey.status, 400);
  assert.match(String(badKey.json.error), /Unknown server config key "core.nonsense"/);

  const badValue = await rawRequest(
    d.socket,
    "PATCH",
    "/1.0",
    JSON.stringify({ config: { "images.remote_cache_expiry": "ten" } }),
    { "content-type": "application/json" },
  );
  assert.equal(badValue.status, 400);
  assert.match(String(badValue.json.error), /images.remote_cache_expiry/);

  const badProject = await rawRequest(d.socket, "GET", "/1.0?project=nosuch");
  assert.equal(badProject.status, 404);

  assert.equal(d.proc.exitCode, null, "the daemon is still running");
  assert.deepEqual((await d.client.get<Server>("/1.0")).config, before.config);
});

test("server config: PUT replaces, PATCH merges, If-Match guards against lost updates", async (t) => {
  const d = await TestDaemon.start(t);
  await d.client.put("/1.0", { config: { "images.remote_cache_expiry": "3", "user.a": "1" } });
  await d.client.patch("/1.0", { config: { "user.b": "2" } });
  let r = await d.client.raw<Server>("GET", "/1.0");
  assert.deepEqual((r.body.metadata as Server).config, { "images.remote_cache_expiry": "3", "user.a": "1", "user.b": "2" });
  const etag = String(r.headers.etag);
  assert.match(etag, /^"[0-9a-f]{64}"$/);

  await d.client.patch("/1.0", { config: { "user.a": "" } }, { headers: { "if-match": etag } });
  const stale = await d.client.raw("PATCH", "/1.0", { config: { "user.c": "3" } }, { headers: { "if-match": etag } });
  assert.equal(stale.status, 412);
  r = await d.client.raw<Server>("GET", "/1.0");
  assert.deepEqual((r.body.metadata as Server).config, { "images.remote_cache_expiry": "3", "user.b": "2" });
});

test("the state survives kill -9 and the daemon restarts on the same directory", async (t) => {
  const d = await TestDaemon.start(t);
  await d.client.patch("/1.0", { config: { "user.survives": "yes", "images.auto_update_interval": "12" } });
  // Writes in flight while the daemon dies must not corrupt anything either.
  const writes = Array.from({ length: 50 }, (_, i) =>
    d.client.patch("/1.0", { config: { [`user.n${i}`]: String(i) } }).catch(() => undefined),
  );
  await d.kill9();
  await Promise.all(writes);
  await d.launch();
  const server = await d.client.get<Server>("/1.0");
  assert.equal(server.config["user.survives"], "yes");
  assert.equal(server.config["images.auto_update_interval"], "12");
  await d.client.patch("/1.0", { config: { "user.after": "1" } });
  assert.equal((await d.client.get<Server>("/1.0")).config["user.after"], "1");
});

test("the socket is 0660, SIGTERM shuts down cleanly, logs are written", async (t) => {
  const d = await TestDaemon.start(t);
  const mode = (await stat(d.socket)).mode & 0o777;
  assert.equal(mode, 0o660);
  assert.equal(await d.stop(), 0);
  await assert.rejects(access(d.socket), "socket removed on shutdown");
  await assert.rejects(access(join(d.dir, "lodged.pid")), "pid file removed on shutdown");
  const log = await readFile(join(d.dir, "lodged.log"), "utf8");
  assert.match(log, /level=info msg="lodged started"/);
  assert.match(log, /msg="lodged stopping"/);
});

test("a second lodged on the same directory is refused with a clear message", async (t) => {
  const d = await TestDaemon.start(t);
  const second = await runCommand(process.execPath, [LODGED, "--dir", d.dir], { allowFail: true });
  assert.equal(second.code, 1);
  assert.match(second.stderr, new RegExp(`another lodged \\(pid ${d.proc.pid}\\) is already running on ${d.dir}`));
  // The first daemon is unharmed.
  assert.equal((await d.client.get<Server>("/1.0")).environment.server_pid, d.proc.pid);
});

test("lodged refuses to run as non-root, and --version works for anyone", async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      const c = spawn(process.execPath, [LODGED, ...args], { uid: 65534, gid: 65534, env: { LODGE_DIR: "/nonexistent" } });
      let out = "";
      c.stdout.on("data", (b) => (out += b));
      c.stderr.on("data", (b) => (out += b));
      c.on("close", (code) => resolve({ code: code ?? -1, out }));
    });
  const refused = await run([]);
  assert.equal(refused.code, 1);
  assert.match(refused.out, /must run as root/);
  const version = await run(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.out, /^\d+\.\d+\.\d+\n$/);
});

test("a daemon stopped right after it started ends its background work before the store closes", async () => {
  // The host check and autostart run in the background after start; a stop that came first
  // closed the store under them (an unhandled "database connection is not open", which the
  // test runner reports as this test's failure).
  const { Daemon } = await import("../../src/daemon/daemon.js");
  const { mkdtemp, rm } = await import("node:fs/promises");
  for (let i = 0; i < 5; i++) {
    const dir = await mkdtemp(join(os.tmpdir(), "lodge-stop-"));
    try {
      const d = await Daemon.start({ dir });
      await d.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  // Anything that still ran after its store closed would reject now, within this test.
  await new Promise((r) => setTimeout(r, 500));
});
