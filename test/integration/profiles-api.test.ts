import test from "node:test";
import assert from "node:assert/strict";
import type { Event } from "../../src/api/event.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon } from "../helpers/daemon.js";

// /1.0/profiles over the API: LXD 5.0's shapes, status codes, ETags, used_by and lifecycle
// events; the default profile that always exists.

interface Lifecycle {
  action: string;
  source: string;
  context: Record<string, unknown>;
}

/** Lifecycle events of profiles, as /1.0/events sends them. */
async function profileEvents(t: test.TestContext, d: TestDaemon) {
  const seen: Lifecycle[] = [];
  const sub = await d.client.events((e: Event) => seen.push(e.metadata as Lifecycle), { types: ["lifecycle"] });
  t.after(() => sub.close());
  return async (n: number) => {
    for (let i = 0; i < 100 && seen.filter((e) => e.action.startsWith("profile-")).length < n; i++) await new Promise((r) => setTimeout(r, 20));
    return seen.filter((e) => e.action.startsWith("profile-")).map((e) => [e.action, e.source, e.context]);
  };
}

test("the default profile exists from the first start, holds the root disk, and cannot be deleted or renamed", async (t) => {
  const d = await TestDaemon.start(t);
  assert.deepEqual(await d.client.get("/1.0/profiles"), ["/1.0/profiles/default"]);
  const p = await d.client.get<Record<string, unknown>>("/1.0/profiles/default");
  assert.deepEqual(Object.keys(p).sort(), ["config", "description", "devices", "name", "used_by"]);
  assert.deepEqual(p.devices, { root: { type: "disk", path: "/", pool: "default" } });
  assert.deepEqual(p.config, {});
  assert.deepEqual(p.used_by, []);

  const del = await d.client.raw("DELETE", "/1.0/profiles/default");
  assert.equal(del.status, 403);
  assert.match((del.body as { error: string }).error, /"default" profile cannot be deleted/);
  const ren = await d.client.raw("POST", "/1.0/profiles/default", { name: "other" });
  assert.equal(ren.status, 403);
  assert.deepEqual(await d.client.get("/1.0/profiles"), ["/1.0/profiles/default"]);

  // A restart keeps it (and does not make a second one).
  await d.stop();
  await d.launch();
  assert.deepEqual(await d.client.get("/1.0/profiles"), ["/1.0/profiles/default"]);
  const exts = (await d.client.get<{ api_extensions: string[] }>("/1.0")).api_extensions;
  assert.ok(exts.includes("profile_usedby") && exts.includes("usedby_consistency"));
});

test("profile CRUD: create, list (recursion 0 and 1), get, PUT, PATCH, rename, delete, with events and ETags", async (t) => {
  const d = await TestDaemon.start(t);
  const events = await profileEvents(t, d);

  const made = await d.client.raw("POST", "/1.0/profiles", { name: "web", description: "Web", config: { "limits.cpu": "1" }, devices: {} });
  assert.equal(made.status, 201);
  assert.equal(made.headers.location, "/1.0/profiles/web");
  assert.equal((await d.client.raw("POST", "/1.0/profiles", { name: "web" })).status, 409);

  assert.deepEqual(await d.client.get("/1.0/profiles"), ["/1.0/profiles/default", "/1.0/profiles/web"]);
  const all = await d.client.get<{ name: string }[]>("/1.0/profiles?recursion=1");
  assert.deepEqual(all.map((p) => p.name), ["default", "web"]);
  assert.deepEqual(all[1], { name: "web", description: "Web", config: { "limits.cpu": "1" }, devices: {}, used_by: [] });

  const got = await d.client.raw<Record<string, unknown>>("GET", "/1.0/profiles/web");
  const etag = got.headers.etag as string;
  assert.ok(etag);
  await d.client.put("/1.0/profiles/web", { description: "Web servers", config: { "limits.memory": "256MiB" }, devices: {} }, { headers: { "if-match": etag } });
  const stale = await d.client.raw("PUT", "/1.0/profiles/web", { config: {} }, { headers: { "if-match": etag } });
  assert.equal(stale.status, 412);
  assert.deepEqual((await d.client.get<Record<string, unknown>>("/1.0/profiles/web")).config, { "limits.memory": "256MiB" });

  await d.client.patch("/1.0/profiles/web", { config: { "user.role": "web" } });
  const patched = await d.client.get<Record<string, unknown>>("/1.0/profiles/web");
  assert.deepEqual(patched.config, { "limits.memory": "256MiB", "user.role": "web" });
  assert.equal(patched.description, "Web servers");

  const renamed = await d.client.raw("POST", "/1.0/profiles/web", { name: "www" });
  assert.equal(renamed.status, 201);
  assert.equal(renamed.headers.location, "/1.0/profiles/www");
  assert.equal((await d.client.raw("GET", "/1.0/profiles/web")).status, 404);
  assert.equal((await d.client.raw("POST", "/1.0/profiles/www", { name: "default" })).status, 409);
  await d.client.delete("/1.0/profiles/www");
  assert.equal((await d.client.raw("DELETE", "/1.0/profiles/www")).status, 404);

  assert.deepEqual(await events(5), [
    ["profile-created", "/1.0/profiles/web", {}],
    ["profile-updated", "/1.0/profiles/web", {}],
    ["profile-updated", "/1.0/profiles/web", {}],
    ["profile-renamed", "/1.0/profiles/www", { old_name: "web" }],
    ["profile-deleted", "/1.0/profiles/www", {}],
  ]);
});

test("bad profiles are refused naming what is wrong, and nothing is stored", async (t) => {
  const d = await TestDaemon.start(t);
  const cases: [unknown, number, RegExp][] = [
    [{ name: "" }, 400, /No profile name/],
    [{ name: "a/b" }, 400, /slashes/],
    [{ name: "p", config: { "limits.sparkle": "1" } }, 400, /limits\.sparkle/],
    [{ name: "p", config: { "limits.memory": "lots" } }, 400, /limits\.memory/],
    [{ name: "p", config: { "volatile.x.hwaddr": "00:16:3e:00:00:01" } }, 400, /volatile/],
    [{ name: "p", devices: { d: { type: "disk", path: "/mnt" } } }, 400, /Invalid device "d".*source/],
    [{ name: "p", devices: { d: { type: "disk", source: "/nonexistent/lodge", path: "/mnt" } } }, 400, /\/nonexistent\/lodge/],
  ];
  for (const [body, status, msg] of cases) {
    const r = await d.client.raw("POST", "/1.0/profiles", body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match((r.body as { error: string }).error, msg);
  }
  assert.deepEqual(await d.client.get("/1.0/profiles"), ["/1.0/profiles/default"]);
});

test("instances carry profiles: used_by, unknown profiles, no root device, deleting a profile in use", async (t) => {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  await d.client.post("/1.0/profiles", { name: "extra", config: { "user.from": "extra" } });

  const create = (name: string, profiles?: string[]) =>
    d.client.raw("POST", "/1.0/instances", { name, source: { type: "image", alias: "bb" }, ...(profiles ? { profiles } : {}) });
  const missing = await create("c0", ["default", "nope"]);
  assert.equal(missing.status, 404);
  assert.match((missing.body as { error: string }).error, /Profile "nope" not found/);
  const noRoot = await create("c0", []);
  assert.equal(noRoot.status, 400);
  assert.match((noRoot.body as { error: string }).error, /no root device/);
  assert.deepEqual(await d.client.get("/1.0/instances"), []);

  const made = async (r: Promise<{ status: number; body: unknown }>) => {
    const res = await r;
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await d.client.wait((res.body as { operation: string }).operation);
  };
  await made(create("c1"));
  await made(create("c2", ["default", "extra"]));
  const c1 = await d.client.get<{ profiles: string[]; expanded_devices: Record<string, unknown> }>("/1.0/instances/c1");
  assert.deepEqual(c1.profiles, ["default"]);
  assert.deepEqual(c1.expanded_devices, { root: { type: "disk", path: "/", pool: "default" } });
  assert.deepEqual((await d.client.get<{ used_by: string[] }>("/1.0/profiles/default")).used_by, ["/1.0/instances/c1", "/1.0/instances/c2"]);
  assert.deepEqual((await d.client.get<{ used_by: string[] }>("/1.0/profiles/extra")).used_by, ["/1.0/instances/c2"]);

  const inUse = await d.client.raw("DELETE", "/1.0/profiles/extra");
  assert.equal(inUse.status, 400);
  assert.match((inUse.body as { error: string }).error, /in use by instance "c2"/);
  assert.deepEqual((await d.client.get<{ config: unknown }>("/1.0/profiles/extra")).config, { "user.from": "extra" });

  // An instance edit naming an unknown profile is refused; so is one that loses its root disk.
  const bad = await d.client.raw("PATCH", "/1.0/instances/c1", { profiles: ["default", "nope"] });
  assert.equal(bad.status, 404);
  assert.match((bad.body as { error: string }).error, /Profile "nope" not found/);
  const rootless = await d.client.raw("PATCH", "/1.0/instances/c1", { profiles: ["extra"] });
  assert.equal(rootless.status, 400);
  assert.match((rootless.body as { error: string }).error, /no root device/);
  assert.deepEqual((await d.client.get<{ profiles: string[] }>("/1.0/instances/c1")).profiles, ["default"]);

  // Renaming a profile in use: its instances follow.
  await d.client.post("/1.0/profiles/extra", { name: "more" });
  assert.deepEqual((await d.client.get<{ profiles: string[] }>("/1.0/instances/c2")).profiles, ["default", "more"]);
  assert.deepEqual((await d.client.get<{ used_by: string[] }>("/1.0/profiles/more")).used_by, ["/1.0/instances/c2"]);
});
