import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { Operation } from "../../src/api/operation.js";
import type { Profile } from "../../src/api/profile.js";
import type { Server } from "../../src/api/server.js";
import type { Network } from "../../src/cli/network-types.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { runCommand, TestDaemon, type RunResult } from "../helpers/daemon.js";

// `lodge init` without an image (server set-up: --auto, --preseed, --dump, questions) against
// a real lodged on a fresh LODGE_DIR per test. Bridges are host-global: networks a test names
// are `lt` + 4 random hex characters; whatever networks a test's daemon has are deleted (with
// the instances and profile nics using them) before the daemon goes.

/** A fresh daemon whose networks, and what uses them, are removed when the test ends. */
async function freshDaemon(t: TestContext): Promise<TestDaemon> {
  const d = await TestDaemon.start(undefined);
  // One hook, in this order: the network clean-up needs the daemon.
  t.after(async () => {
    await removeNetworks(d).catch(() => {});
    await d.destroy();
  });
  return d;
}

async function removeNetworks(d: TestDaemon): Promise<void> {
  for (const u of await d.client.get<string[]>("/1.0/instances")) {
    const n = u.split("/").pop()!.split("?")[0]!;
    await d.client.wait(await d.client.put<Operation>(`/1.0/instances/${n}/state`, { action: "stop", force: true })).catch(() => {});
    await d.client.wait(await d.client.delete<Operation>(`/1.0/instances/${n}`)).catch(() => {});
  }
  const managed = (await d.client.get<Network[]>("/1.0/networks?recursion=1")).filter((n) => n.managed).map((n) => n.name);
  for (const p of await d.client.get<Profile[]>("/1.0/profiles?recursion=1")) {
    const devices = Object.fromEntries(Object.entries(p.devices).filter(([, dev]) => !managed.includes(dev.network ?? "")));
    await d.client.put(`/1.0/profiles/${p.name}`, { description: p.description, config: p.config, devices }).catch(() => {});
  }
  for (const n of managed) await d.client.delete(`/1.0/networks/${n}`).catch(() => {});
}

const netName = () => "lt" + randomBytes(2).toString("hex");

async function ok(d: TestDaemon, args: string[], input?: string): Promise<RunResult> {
  const r = await d.lodge(args, { allowFail: true, input });
  assert.equal(r.code, 0, `lodge ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** Each URL's metadata and ETag: what a run that changes nothing leaves exactly as it was. */
async function snapshot(d: TestDaemon, urls: string[]): Promise<Record<string, { body: unknown; etag: unknown }>> {
  const out: Record<string, { body: unknown; etag: unknown }> = {};
  for (const u of urls) {
    const r = await d.client.raw("GET", u);
    out[u] = { body: r.body.type === "error" ? { error: r.status } : r.body.metadata, etag: r.headers.etag };
  }
  return out;
}

async function hostHas(iface: string): Promise<boolean> {
  return (await runCommand("ip", ["link", "show", iface], { allowFail: true })).code === 0;
}

test("init --auto on a fresh server, then launch: the instance has an IPv4 address in lodge list", async (t) => {
  const d = await freshDaemon(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await ok(d, ["init", "--auto"]);

  const profile = await d.client.get<Profile>("/1.0/profiles/default");
  const bridge = profile.devices.eth0?.network ?? "";
  assert.match(bridge, /^lodgebr\d+$/, "the default profile's eth0 is on the new bridge");
  assert.deepEqual(profile.devices, { root: { type: "disk", path: "/", pool: "default" }, eth0: { type: "nic", network: bridge, name: "eth0" } });
  const net = await d.client.get<Network>(`/1.0/networks/${bridge}`);
  assert.equal(net.managed, true);
  assert.equal(net.type, "bridge");
  assert.match(net.config["ipv4.address"]!, /^((\d+\.){3}\d+\/\d+|auto)$/);
  assert.ok(await hostHas(bridge));

  // A second run changes nothing.
  const urls = ["/1.0", "/1.0/profiles/default", `/1.0/networks/${bridge}`, "/1.0/networks", "/1.0/profiles"];
  const before = await snapshot(d, urls);
  await ok(d, ["init", "--auto"]);
  assert.deepEqual(await snapshot(d, urls), before);

  await ok(d, ["launch", "bb", "c1"]);
  let ipv4 = "";
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && !ipv4; ) {
    ipv4 = (await ok(d, ["list", "c1", "-c", "4", "--format", "csv"])).stdout.trim();
    if (!ipv4) await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(ipv4, /^(\d+\.){3}\d+ \(eth0\)$/, "lodge list shows c1's DHCP address on eth0");
  const table = (await ok(d, ["list"])).stdout;
  assert.ok(table.includes(ipv4), table);
});

test("init --preseed twice changes nothing; --dump prints it back, and applying the dump changes nothing", async (t) => {
  const d = await freshDaemon(t);
  const name = netName();
  const preseed = `
config:
  images.auto_update_interval: 3
storage_pools:
  - name: default
    driver: dir
networks:
  - name: ${name}
    type: bridge
    description: From the preseed
    config:
      ipv4.address: auto
      ipv6.address: none
profiles:
  - name: default
    devices:
      eth0: {type: nic, network: ${name}, name: eth0}
  - name: web
    description: Web servers
    config:
      limits.memory: 256MiB
    devices:
      root: {type: disk, path: /, pool: default}
      eth0: {type: nic, network: ${name}, name: eth0}
`;
  await ok(d, ["init", "--preseed"], preseed);
  assert.equal((await d.client.get<Server>("/1.0")).config["images.auto_update_interval"], "3");
  const net = await d.client.get<Network>(`/1.0/networks/${name}`);
  assert.equal(net.description, "From the preseed");
  assert.equal(net.config["ipv6.address"], "none");
  assert.ok(await hostHas(name));
  assert.deepEqual((await d.client.get<Profile>("/1.0/profiles/default")).devices, {
    root: { type: "disk", path: "/", pool: "default" },
    eth0: { type: "nic", network: name, name: "eth0" },
  });
  const web = await d.client.get<Profile>("/1.0/profiles/web");
  assert.equal(web.description, "Web servers");
  assert.deepEqual(web.config, { "limits.memory": "256MiB" });

  const urls = ["/1.0", `/1.0/networks/${name}`, "/1.0/networks", "/1.0/profiles/default", "/1.0/profiles/web", "/1.0/profiles"];
  const before = await snapshot(d, urls);
  await ok(d, ["init", "--preseed"], preseed);
  assert.deepEqual(await snapshot(d, urls), before, "the second run changed something");

  const dump = (await ok(d, ["init", "--dump"])).stdout;
  const parsed = parseYaml(dump) as { config: Record<string, string>; networks: { name: string }[]; storage_pools: { name: string; driver: string }[]; profiles: { name: string }[] };
  assert.equal(parsed.config["images.auto_update_interval"], "3");
  assert.deepEqual(parsed.networks.map((n) => n.name), [name]);
  assert.deepEqual(parsed.networks[0], { config: net.config, description: "From the preseed", name, type: "bridge", project: "default" });
  assert.deepEqual(parsed.storage_pools.map((p) => [p.name, p.driver]), [["default", "dir"]]);
  assert.deepEqual(parsed.profiles.map((p) => p.name), ["default", "web"]);
  await ok(d, ["init", "--preseed"], dump);
  assert.deepEqual(await snapshot(d, urls), before, "applying the dump changed something");
});

test("a preseed that fails midway leaves nothing of its run: created networks deleted, updated ones and config restored", async (t) => {
  const d = await freshDaemon(t);
  const [kept, made, bad] = [netName(), netName(), netName()];
  await ok(d, ["network", "create", kept, "ipv4.address=auto", "ipv6.address=none", "--description", "before"]);
  const urls = ["/1.0", `/1.0/networks/${kept}`, "/1.0/networks", "/1.0/profiles", "/1.0/profiles/default"];
  const before = await snapshot(d, urls);

  const r = await d.lodge(["init", "--preseed"], {
    allowFail: true,
    input: `
config:
  images.auto_update_interval: 2
networks:
  - name: ${kept}
    description: changed by the preseed
  - name: ${made}
    config: {ipv4.address: auto, ipv6.address: none}
  - name: ${bad}
    config: {ipv4.address: auto, ipv6.address: none, bogus.key: 1}
profiles:
  - name: web
    devices:
      eth0: {type: nic, network: ${made}, name: eth0}
`,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^Error: Failed to create network "${bad}": .*bogus\\.key`, "m"));
  assert.match(r.stderr, /earlier changes were undone/);

  const after = await snapshot(d, urls);
  for (const u of urls) assert.deepEqual(after[u]!.body, before[u]!.body, `${u} is as it was`);
  assert.equal((await d.client.raw("GET", `/1.0/networks/${made}`)).status, 404, "the network the run made is gone");
  assert.ok(!(await hostHas(made)), "and so is its bridge");
  assert.ok(!(await hostHas(bad)));
  assert.equal((await d.client.raw("GET", "/1.0/profiles/web")).status, 404);
});

/** Whether the server has /1.0/storage-pools (then init asks about storage first). */
async function hasPoolApi(d: TestDaemon): Promise<boolean> {
  return (await d.client.raw("GET", "/1.0/storage-pools")).status !== 404;
}

test("init asks lxd init's questions, also with answers piped in", async (t) => {
  const d = await freshDaemon(t);
  const name = netName();
  // With a storage pool API the first question is whether to make a new pool: no.
  const storage = (await hasPoolApi(d)) ? "no\n" : "";
  const r = await ok(d, ["init"], `${storage}yes\n${name}\nauto\nnone\nno\nyes\n`);
  assert.match(r.stdout, /Would you like to create a new local network bridge\? \(yes\/no\) \[default=yes\]: /);
  assert.match(r.stdout, /What should the new bridge be called\? \[default=lodgebr\d+\]: /);
  assert.match(r.stdout, /What IPv6 address should be used\?/);
  // The preseed asked for is printed, and is what was applied.
  const printed = parseYaml(r.stdout.slice(r.stdout.indexOf("storage_pools:"))) as { networks: { name: string; config: Record<string, string> }[] };
  assert.deepEqual(printed.networks, [{ name, type: "bridge", config: { "ipv4.address": "auto", "ipv6.address": "none" } }]);
  assert.equal((await d.client.get<Network>(`/1.0/networks/${name}`)).config["ipv6.address"], "none");
  assert.deepEqual((await d.client.get<Profile>("/1.0/profiles/default")).devices.eth0, { type: "nic", network: name, name: "eth0" });
  assert.equal((await d.client.get<Server>("/1.0")).config["images.auto_update_interval"], "0");
});

test("init --auto --storage-backend btrfs is refused while the default pool is a dir pool, changing nothing", async (t) => {
  // Needs the daemon's /1.0/storage-pools (the default pool read as dir); btrfs when offered.
  const d = await freshDaemon(t);
  const urls = ["/1.0", "/1.0/networks", "/1.0/profiles/default", "/1.0/storage-pools"];
  const before = await snapshot(d, urls);
  const r = await d.lodge(["init", "--auto", "--storage-backend", "btrfs"], { allowFail: true });
  assert.equal(r.code, 2);
  const drivers = (await d.client.get<Server>("/1.0")).environment.storage_supported_drivers ?? [];
  if (drivers.some((x) => x.Name === "btrfs")) assert.match(r.stderr, /Storage pool "default" exists with driver "dir", not "btrfs": name a new btrfs pool with --storage-pool NAME/);
  else assert.match(r.stderr, /The requested backend "btrfs" isn't available on this server \(available: dir\)/);
  const zfs = await d.lodge(["init", "--auto", "--storage-backend", "zfs"], { allowFail: true });
  assert.equal(zfs.code, 2);
  assert.match(zfs.stderr, /The requested backend "zfs" isn't available on this server/);
  const loopOnDir = await d.lodge(["init", "--auto", "--storage-create-loop", "1"], { allowFail: true });
  assert.equal(loopOnDir.code, 2);
  assert.match(loopOnDir.stderr, /may be used with the 'dir' backend/);
  assert.deepEqual(await snapshot(d, urls), before);
});

test("init --auto makes a btrfs pool on a loop file named by --storage-pool, moves the root disk to it, and a second run changes nothing", async (t) => {
  // Needs the daemon's /1.0/storage-pools with the btrfs driver.
  const d = await freshDaemon(t);
  const drivers = (await d.client.get<Server>("/1.0")).environment.storage_supported_drivers ?? [];
  if (!drivers.some((x) => x.Name === "btrfs")) return t.skip("the server does not offer btrfs");
  const pool = `fast${randomBytes(2).toString("hex")}`;
  // The loop file's filesystem must be unmounted while the daemon lives (freshDaemon's hook,
  // added first, runs first): the root disk goes back and the pool goes before the test ends.
  try {
    await ok(d, ["init", "--auto", "--storage-backend", "btrfs", "--storage-create-loop", "1", "--storage-pool", pool]);
    const made = await d.client.get<{ driver: string; config: Record<string, string> }>(`/1.0/storage-pools/${pool}`);
    assert.equal(made.driver, "btrfs");
    assert.equal(made.config.size, "1GB");
    assert.deepEqual((await d.client.get<Profile>("/1.0/profiles/default")).devices.root, { type: "disk", path: "/", pool });

    const urls = ["/1.0", "/1.0/profiles/default", `/1.0/storage-pools/${pool}`, "/1.0/storage-pools", "/1.0/networks"];
    const before = await snapshot(d, urls);
    await ok(d, ["init", "--auto", "--storage-backend", "btrfs", "--storage-create-loop", "1", "--storage-pool", pool]);
    assert.deepEqual(await snapshot(d, urls), before, "the second run changed something");
    const dump = parseYaml((await ok(d, ["init", "--dump"])).stdout) as { storage_pools: { name: string; driver: string }[] };
    assert.deepEqual(dump.storage_pools.map((p) => [p.name, p.driver]), [["default", "dir"], [pool, "btrfs"]].sort());
  } finally {
    const p = await d.client.get<Profile>("/1.0/profiles/default").catch(() => undefined);
    if (p?.devices.root?.pool === pool) await d.client.put("/1.0/profiles/default", { description: p.description, config: p.config, devices: { ...p.devices, root: { ...p.devices.root, pool: "default" } } }).catch(() => {});
    await d.client.delete(`/1.0/storage-pools/${pool}`).catch(() => {});
  }
});

test("init --preseed makes and updates storage pools through the API, twice changes nothing, and undoes a failed run", async (t) => {
  // Needs the daemon's /1.0/storage-pools.
  const d = await freshDaemon(t);
  const source = await mkdtemp(join(tmpdir(), "lodge-init-pool-"));
  t.after(() => rm(source, { recursive: true, force: true }));
  const preseed = `
storage_pools:
  - name: extra
    driver: dir
    description: From the preseed
    config:
      source: ${source}
  - name: default
    config:
      user.note: seeded
profiles:
  - name: onextra
    devices:
      root: {type: disk, path: /, pool: extra}
`;
  await ok(d, ["init", "--preseed"], preseed);
  const extra = await d.client.get<{ driver: string; description: string; config: Record<string, string> }>("/1.0/storage-pools/extra");
  assert.equal(extra.driver, "dir");
  assert.equal(extra.description, "From the preseed");
  assert.equal(extra.config.source, source);
  assert.equal((await d.client.get<{ config: Record<string, string> }>("/1.0/storage-pools/default")).config["user.note"], "seeded");

  const urls = ["/1.0/storage-pools", "/1.0/storage-pools/extra", "/1.0/storage-pools/default", "/1.0/profiles/onextra"];
  const before = await snapshot(d, urls);
  await ok(d, ["init", "--preseed"], preseed);
  assert.deepEqual(await snapshot(d, urls), before, "the second run changed something");
  const dump = (await ok(d, ["init", "--dump"])).stdout;
  const parsed = parseYaml(dump) as { storage_pools: { name: string; driver: string; config: Record<string, string> }[] };
  assert.deepEqual(parsed.storage_pools.map((p) => [p.name, p.driver]), [["default", "dir"], ["extra", "dir"]]);
  assert.equal(parsed.storage_pools[1]!.config.source, source);
  await ok(d, ["init", "--preseed"], dump);
  assert.deepEqual(await snapshot(d, urls), before, "applying the dump changed something");

  // A run that fails after making a pool deletes it again.
  const bad = await d.lodge(["init", "--preseed"], {
    allowFail: true,
    input: `storage_pools:\n  - name: made\n    driver: dir\nnetworks:\n  - name: ${netName()}\n    config: {bogus.key: 1}\n`,
  });
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /earlier changes were undone/);
  assert.equal((await d.client.raw("GET", "/1.0/storage-pools/made")).status, 404);
  const wrongDriver = await d.lodge(["init", "--preseed"], { allowFail: true, input: "storage_pools:\n  - name: extra\n    driver: btrfs\n" });
  assert.equal(wrongDriver.code, 2);
  assert.match(wrongDriver.stderr, /The existing storage pool "extra" has driver "dir", not "btrfs"/);
});

test("server set-up refuses what it cannot do before changing anything", async (t) => {
  const d = await freshDaemon(t);
  const before = await snapshot(d, ["/1.0", "/1.0/profiles", "/1.0/profiles/default"]);
  const refused: [string[], string | undefined, RegExp][] = [
    [["init", "--preseed"], "config: {images.auto_update_interval: 1}\nprojects:\n  - name: p1\n", /projects are not supported yet/],
    [["init", "--preseed"], "cluster:\n  enabled: true\n", /clustering is not supported yet/],
    [["init", "--preseed"], "networks:\n  - name: x\n    mtu: 1400\n", /network "x" has unknown field "mtu"/],
    [["init", "--auto", "--preseed"], "", /--auto and --preseed cannot be used together/],
    [["init", "--storage-backend", "dir"], undefined, /--storage-backend goes with --auto/],
    [["init", "bb", "c1", "--auto"], undefined, /--auto sets up the server: give no image/],
    [["init", "--auto", "-p", "default"], undefined, /--profile is for creating an instance: name an image/],
  ];
  for (const [args, input, re] of refused) {
    const r = await d.lodge(args, { allowFail: true, input });
    assert.equal(r.code, 2, `lodge ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  assert.deepEqual(await snapshot(d, ["/1.0", "/1.0/profiles", "/1.0/profiles/default"]), before);
  assert.match((await ok(d, ["init", "--help"])).stdout, /--preseed/);
});
