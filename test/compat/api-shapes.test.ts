import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { shapeProblems } from "../helpers/api-shape.js";
import type { Event } from "../../src/api/event.js";
import type { Operation } from "../../src/api/operation.js";

// The API's shapes, field by field against LXD 5.0.2's reference: names, JSON types, null vs empty.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

const assertShape = async (name: string, value: unknown, what: string) => assert.deepEqual(await shapeProblems(name, value), [], what);

test("instances, instance state, images, operations and events have LXD 5.0.2's shapes", async (t) => {
  const d = await daemonWithImage(t);
  const events: Event[] = [];
  const sub = await d.client.events((e) => void events.push(e), { types: ["operation", "lifecycle", "logging"] });
  t.after(() => sub.close());
  await d.lxc(["launch", "bb", "c"]);
  await d.lxc(["init", "bb", "s"]);

  const server = await d.client.get<{ api_extensions: string[]; environment: { driver: string } }>("/1.0");
  await assertShape("Server", server, "server");
  // Names the lxc client checks before it takes a code path; each listed once.
  for (const e of ["instances", "container_full", "image_create_aliases", "etag"]) assert.ok(server.api_extensions.includes(e), e);
  assert.equal(new Set(server.api_extensions).size, server.api_extensions.length, "no extension listed twice");

  for (const n of ["c", "s"]) {
    await assertShape("Instance", await d.client.get(`/1.0/instances/${n}`), `instance ${n}`);
    await assertShape("InstanceFull", await d.client.get(`/1.0/instances/${n}?recursion=1`), `full instance ${n}`);
    await assertShape("InstanceState", await d.client.get(`/1.0/instances/${n}/state`), `state of ${n}`);
  }
  for (const i of await d.client.get<unknown[]>("/1.0/instances?recursion=1")) await assertShape("Instance", i, "listed instance");
  for (const i of await d.client.get<unknown[]>("/1.0/instances?recursion=2")) await assertShape("InstanceFull", i, "listed full instance");
  // A stopped instance has no network (null), as LXD; a running one has its interfaces.
  assert.equal((await d.client.get<{ network: unknown }>("/1.0/instances/s/state")).network, null);
  assert.equal(typeof (await d.client.get<{ network: unknown }>("/1.0/instances/c/state")).network, "object");

  const [image] = await d.client.get<{ fingerprint: string }[]>("/1.0/images?recursion=1");
  await assertShape("Image", image, "listed image");
  await assertShape("Image", await d.client.get(`/1.0/images/${image!.fingerprint}`), "image");
  await assertShape("ImageAliasesEntry", await d.client.get("/1.0/images/aliases/bb"), "alias");

  const op = await d.client.get<Operation>(`/1.0/operations/${((await d.client.raw("PUT", "/1.0/instances/s/state", { action: "start" })).body.metadata as Operation).id}`);
  await assertShape("Operation", op, "operation");
  await d.client.wait(op.id);
  await assertShape("Operation", await d.client.get(`/1.0/operations/${op.id}`), "finished operation");

  await new Promise((r) => setTimeout(r, 200));
  assert.ok(events.some((e) => e.type === "lifecycle") && events.some((e) => e.type === "operation"));
  for (const e of events) {
    await assertShape("Event", e, `${e.type} event`);
    if (e.type === "operation") await assertShape("Operation", e.metadata, "operation event's metadata");
  }
});

test("every running operation is listed in /1.0/operations, by status, until it ends", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c"]);
  // An exec that runs a while, from the real client.
  const env = { ...process.env, LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") };
  const exec = spawn("lxc", ["exec", "c", "--", "sleep", "4"], { env, stdio: "ignore" });
  const execDone = new Promise((r) => exec.once("exit", r));
  // A console, waiting for its client.
  const cons = await d.client.post<Operation>("/1.0/instances/c/console", { width: 80, height: 24 });

  const deadline = Date.now() + 10_000;
  let urls: Record<string, string[]> = {};
  let execId: string | undefined;
  while (Date.now() < deadline && !execId) {
    urls = await d.client.get<Record<string, string[]>>("/1.0/operations");
    const full = await d.client.get<Record<string, Operation[]>>("/1.0/operations?recursion=1");
    execId = full.running?.find((o) => o.description === "Executing command")?.id;
    if (!execId) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(execId, `the exec is listed as running: ${JSON.stringify(urls)}`);
  const full = await d.client.get<Record<string, Operation[]>>("/1.0/operations?recursion=1");
  urls = await d.client.get<Record<string, string[]>>("/1.0/operations");
  for (const id of [execId!, cons.id]) {
    assert.ok(urls.running?.includes(`/1.0/operations/${id}`), `${id} listed (recursion 0): ${JSON.stringify(urls)}`);
    const o = full.running?.find((x) => x.id === id);
    assert.ok(o, `${id} listed (recursion 1)`);
    await assertShape("Operation", o, `listed operation ${o!.description}`);
  }
  await execDone;
  await d.client.raw("DELETE", `/1.0/operations/${cons.id}`);
  const after = await d.client.get<Record<string, string[]>>("/1.0/operations");
  assert.ok(!after.running?.includes(`/1.0/operations/${execId}`), "the exec is no longer running once it ended");
  assert.ok(after.success?.includes(`/1.0/operations/${execId}`), "it is listed under success");
});

test("networks, their leases, state and forwards have LXD 5.0.2's shapes", async (t) => {
  const d = await daemonWithImage(t);
  const name = `lt${Math.random().toString(16).slice(2, 8)}`;
  t.after(() => d.client.delete(`/1.0/networks/${name}`).catch(() => {}));
  await d.lxc(["network", "create", name, "ipv4.address=10.248.3.1/24", "ipv6.address=none"]);
  await d.lxc(["launch", "bb", "c", "--network", name]);
  await d.lxc(["network", "forward", "create", name, "10.248.3.1"]);
  await d.lxc(["network", "forward", "port", "add", name, "10.248.3.1", "tcp", "8080", "10.248.3.50", "80"]);

  await assertShape("Network", await d.client.get(`/1.0/networks/${name}`), "managed network");
  await assertShape("Network", await d.client.get("/1.0/networks/lo"), "unmanaged network");
  for (const n of await d.client.get<unknown[]>("/1.0/networks?recursion=1")) await assertShape("Network", n, "listed network");
  await assertShape("NetworkState", await d.client.get(`/1.0/networks/${name}/state`), "network state");
  await assertShape("NetworkForward", await d.client.get(`/1.0/networks/${name}/forwards/10.248.3.1`), "forward");
  // A lease comes when the container's DHCP client asks.
  const deadline = Date.now() + 20_000;
  let leases: unknown[] = [];
  while (leases.length === 0 && Date.now() < deadline) {
    leases = await d.client.get<unknown[]>(`/1.0/networks/${name}/leases`);
    if (leases.length === 0) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(leases.length > 0, "a lease");
  for (const l of leases) await assertShape("NetworkLease", l, "lease");
});
