import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import YAML from "yaml";
import { inProcessDaemon } from "../helpers/daemon.js";

// The real `lxc` client (Debian's lxd-client 5.0.2) against lodged.

test("lxc info and lxc query /1.0 show lodged's server", async (t) => {
  const { lxc, d } = await inProcessDaemon(t);
  const info = await lxc(["info"]);
  const parsed = YAML.parse(info.stdout) as { api_version: string; auth: string; environment: { server: string; kernel: string } };
  assert.equal(parsed.api_version, "1.0");
  assert.equal(parsed.auth, "trusted");
  assert.equal(parsed.environment.server, "lodge");
  assert.equal(parsed.environment.kernel, "Linux");
  const q = JSON.parse((await lxc(["query", "/1.0"])).stdout) as { environment: { server_pid: number } };
  assert.equal(q.environment.server_pid, process.pid);
  const missing = await lxc(["query", "/1.0/nothing-here"], { allowFail: true });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /not found/);
  assert.ok(d);
});

test("lxc operation list/show/delete see lodged's operations", async (t) => {
  const { lxc, d } = await inProcessDaemon(t);
  const empty = await lxc(["operation", "list", "--format", "csv"]);
  assert.equal(empty.stdout.trim(), "");
  const op = d.operations.create({
    description: "Downloading image",
    cancellable: true,
    run: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(new Error("cancelled")))),
  });
  await new Promise((r) => setTimeout(r, 20));
  const list = await lxc(["operation", "list", "--format", "csv"]);
  assert.match(list.stdout, new RegExp(`^${op.id},TASK,Downloading image,RUNNING,YES,`, "m"));
  const show = YAML.parse((await lxc(["operation", "show", op.id])).stdout) as { id: string; status: string };
  assert.equal(show.id, op.id);
  assert.equal(show.status, "Running");
  await lxc(["operation", "delete", op.id]);
  const after = YAML.parse((await lxc(["operation", "show", op.id])).stdout) as { status: string };
  assert.equal(after.status, "Cancelled");
});

test("lxc monitor streams lifecycle and operation events from lodged", async (t) => {
  const { lxc, d, dir } = await inProcessDaemon(t);
  // The daemon listens to its own lifecycle events (networks keep their DHCP hosts by them).
  const internal = d.events.listeners;
  const mon = spawn("lxc", ["monitor", "--format", "json"], {
    env: { ...process.env, LXD_SOCKET: d.socket, LXD_CONF: join(dir, ".lxc-client") },
  });
  t.after(() => mon.kill("SIGKILL"));
  let out = "";
  mon.stdout.on("data", (c) => (out += c));
  // Wait until the monitor's subscription is live.
  for (let i = 0; i < 200 && d.events.listeners === internal; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(d.events.listeners, internal + 1);
  await lxc(["config", "set", "user.monitored", "yes"]);
  const op = d.operations.create({ description: "Watched", run: async () => ({ done: true }) });
  for (let i = 0; i < 200 && !out.includes('"Success"'); i++) await new Promise((r) => setTimeout(r, 25));
  const events = out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; timestamp: string; metadata: { action?: string; id?: string; status?: string } })
    // lxc prints each event from its own goroutine: the print order is not the sent order,
    // the nanosecond timestamps are (they sort as strings).
    .sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
  assert.ok(events.some((e) => e.type === "lifecycle" && e.metadata.action === "config-updated"));
  assert.deepEqual(
    events.filter((e) => e.type === "operation" && e.metadata.id === op.id).map((e) => e.metadata.status),
    ["Pending", "Running", "Success"],
  );
});

test("lxc config set/get/unset on the server, with errors naming the key", async (t) => {
  const { lxc } = await inProcessDaemon(t);
  await lxc(["config", "set", "images.remote_cache_expiry", "7"]);
  assert.equal((await lxc(["config", "get", "images.remote_cache_expiry"])).stdout.trim(), "7");
  await lxc(["config", "unset", "images.remote_cache_expiry"]);
  assert.equal((await lxc(["config", "get", "images.remote_cache_expiry"])).stdout.trim(), "");
  const bad = await lxc(["config", "set", "core.made_up", "1"], { allowFail: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unknown server config key "core.made_up"/);
  const warnings = await lxc(["warning", "list", "--format", "csv"]);
  assert.equal(warnings.code, 0);
});
