import test from "node:test";
import assert from "node:assert/strict";
import type { Profile } from "../../src/api/profile.js";
import { checkServerInitOptions } from "../../src/cli/init.js";
import { applyPlan, InitStepError, namesOf, type InitApi } from "../../src/cli/init-apply.js";
import { interview } from "../../src/cli/init-interactive.js";
import { autoNames, autoPreseed, planPreseed, same, type AutoFacts, type AutoOptions, type Current, type Step } from "../../src/cli/init-plan.js";
import { dumpPreseed, parsePreseed } from "../../src/cli/init-preseed.js";
import type { Network } from "../../src/cli/network-types.js";
import type { StoragePool } from "../../src/cli/storage-types.js";

const ROOT = { type: "disk", path: "/", pool: "default" };

function net(name: string, over: Partial<Network> = {}): Network {
  return { name, description: "", type: "bridge", managed: true, status: "Created", config: { "ipv4.address": "10.9.9.1/24" }, used_by: [], ...over };
}
function profile(name: string, over: Partial<Profile> = {}): Profile {
  return { name, description: "", config: {}, devices: {}, used_by: [], ...over };
}
function current(over: { config?: Record<string, string>; pools?: StoragePool[]; networks?: Network[]; profiles?: Profile[] } = {}): Current {
  const m = <T extends { name: string }>(l: T[]) => new Map(l.map((x) => [x.name, { value: x, etag: `etag-${x.name}` }]));
  return {
    config: over.config ?? {},
    configEtag: "etag-server",
    pools: over.pools ? m(over.pools) : undefined,
    networks: m(over.networks ?? []),
    profiles: m(over.profiles ?? [profile("default", { description: "Default Lodge profile", devices: { root: ROOT } })]),
  };
}

test("a preseed is read in LXD's shape: values become strings, entries are checked by name", async () => {
  const p = await parsePreseed(`
config:
  images.auto_update_interval: 0
networks:
  - name: lt1
    type: bridge
    project: default
    config:
      ipv4.address: auto
      ipv4.nat: true
storage_pools:
  - name: default
    driver: dir
profiles:
  - name: default
    devices:
      eth0: {type: nic, network: lt1, name: eth0}
projects: []
cluster: null
`);
  assert.deepEqual(p, {
    config: { "images.auto_update_interval": "0" },
    networks: [{ name: "lt1", type: "bridge", config: { "ipv4.address": "auto", "ipv4.nat": "true" } }],
    storage_pools: [{ name: "default", driver: "dir" }],
    profiles: [{ name: "default", devices: { eth0: { type: "nic", network: "lt1", name: "eth0" } } }],
  });
  assert.deepEqual(await parsePreseed(""), {});
});

test("a preseed Lodge cannot apply is refused before anything is done, naming what", async () => {
  const refused: [string, RegExp][] = [
    ["projects:\n  - name: p1\n", /projects are not supported yet/],
    ["cluster:\n  enabled: true\n", /clustering is not supported yet/],
    ["storage_volumes: []\n", /unknown section "storage_volumes"/],
    ["networks:\n  - type: bridge\n", /networks entry 1 has no name/],
    ["networks:\n  - name: a\n    mtu: 1400\n", /network "a" has unknown field "mtu"/],
    ["networks:\n  - name: a\n    project: p1\n", /network "a" is in project "p1"/],
    ["networks:\n  - name: a\n  - name: a\n", /network "a" is given twice/],
    ["profiles:\n  - name: p\n    devices:\n      eth0: nic\n", /profile "p" device "eth0" must be a map/],
    ["profiles: {}\n", /profiles must be a list/],
    ["config:\n  a: {b: c}\n", /preseed config key "a" must be a plain value/],
    ["config: [\n", /Invalid preseed YAML/],
    ["- a\n", /preseed must be a map/],
  ];
  for (const [text, re] of refused) await assert.rejects(parsePreseed(text), re, text);
});

test("the plan creates what is missing in order config, pools, networks, profiles", async () => {
  const p = await parsePreseed(`
config: {images.auto_update_interval: "0"}
networks: [{name: lt1, config: {ipv4.address: auto}}]
profiles:
  - name: web
    description: Web
    devices: {eth0: {type: nic, network: lt1}}
`);
  const steps = planPreseed(p, current({ config: { "images.auto_update_interval": "6" } }));
  assert.deepEqual(steps, [
    { kind: "config", what: "the server config", set: { "images.auto_update_interval": "0" }, previous: { "images.auto_update_interval": "6" }, etag: "etag-server" },
    { kind: "create", what: 'network "lt1"', collection: "/1.0/networks", url: "/1.0/networks/lt1", body: { name: "lt1", type: "bridge", description: "", config: { "ipv4.address": "auto" } } },
    { kind: "create", what: 'profile "web"', collection: "/1.0/profiles", url: "/1.0/profiles/web", body: { name: "web", description: "Web", config: {}, devices: { eth0: { type: "nic", network: "lt1" } } } },
  ]);
});

test("the plan merges into what exists as LXD does, and leaves equal things alone", async () => {
  const cur = current({
    config: { "images.auto_update_interval": "0" },
    networks: [net("lt1", { config: { "ipv4.address": "10.9.9.1/24", "ipv6.address": "none" } })],
    profiles: [profile("default", { description: "Default Lodge profile", devices: { root: { ...ROOT, size: "10GiB" } } })],
  });
  // Equal (or a subset of what is there): nothing to do.
  const equal = await parsePreseed(`
config: {images.auto_update_interval: 0}
networks: [{name: lt1, type: bridge, config: {ipv4.address: 10.9.9.1/24}}]
profiles: [{name: default, devices: {root: {path: /, pool: default}}}]
`);
  assert.deepEqual(planPreseed(equal, cur), []);
  // "auto" is satisfied by the subnet picked when the network was made: a preseed run twice changes nothing.
  assert.deepEqual(planPreseed({ networks: [{ name: "lt1", config: { "ipv4.address": "auto" } }] }, cur), []);
  // …but not by "none": then auto is a change.
  assert.deepEqual(
    planPreseed({ networks: [{ name: "lt1", config: { "ipv6.address": "auto" } }] }, cur).map((s) => s.kind === "update" && (s.body as { config: object }).config),
    [{ "ipv4.address": "10.9.9.1/24", "ipv6.address": "auto" }],
  );
  // Different: an update with If-Match of what was read, keys merged, the old state kept for undo.
  const changed = await parsePreseed(`
networks: [{name: lt1, description: new, config: {ipv4.nat: "false"}}]
profiles: [{name: default, devices: {root: {size: 20GiB}, eth0: {type: nic, network: lt1, name: eth0}}}]
`);
  assert.deepEqual(planPreseed(changed, cur), [
    {
      kind: "update",
      what: 'network "lt1"',
      url: "/1.0/networks/lt1",
      body: { description: "new", config: { "ipv4.address": "10.9.9.1/24", "ipv6.address": "none", "ipv4.nat": "false" } },
      previous: { description: "", config: { "ipv4.address": "10.9.9.1/24", "ipv6.address": "none" } },
      etag: "etag-lt1",
    },
    {
      kind: "update",
      what: 'profile "default"',
      url: "/1.0/profiles/default",
      body: { description: "Default Lodge profile", config: {}, devices: { root: { ...ROOT, size: "20GiB" }, eth0: { type: "nic", network: "lt1", name: "eth0" } } },
      previous: { description: "Default Lodge profile", config: {}, devices: { root: { ...ROOT, size: "10GiB" } } },
      etag: "etag-default",
    },
  ]);
});

test("the plan refuses a host interface, another type, and pools this server cannot have", async () => {
  const cur = current({ networks: [net("eth0", { managed: false, type: "physical" }), net("lt1")] });
  assert.throws(() => planPreseed({ networks: [{ name: "eth0" }] }, cur), /network "eth0": an interface of that name exists on the host and is not managed by Lodge/);
  assert.throws(() => planPreseed({ networks: [{ name: "lt1", type: "macvlan" }] }, cur), /The existing network "lt1" has type "bridge", not "macvlan"/);
  // Without /1.0/storage-pools: the implicit default/dir pool is there; nothing else can be.
  assert.deepEqual(planPreseed({ storage_pools: [{ name: "default", driver: "dir" }] }, cur), []);
  assert.deepEqual(planPreseed({ storage_pools: [{ name: "default" }] }, cur), []);
  assert.throws(() => planPreseed({ storage_pools: [{ name: "fast", driver: "dir" }] }, cur), /storage pool "fast".*no storage pool API yet, only its implicit pool "default" \(driver dir\)/);
  assert.throws(() => planPreseed({ storage_pools: [{ name: "default", driver: "btrfs" }] }, cur), /storage pool "default" \(driver btrfs\)/);
  assert.throws(() => planPreseed({ storage_pools: [{ name: "default", driver: "dir", config: { size: "1GiB" } }] }, cur), /cannot be configured/);
});

test("with a storage pool API, pools are created and updated like the rest", () => {
  const cur = current({ pools: [{ name: "default", driver: "dir", description: "", config: { source: "/x" } }] });
  assert.deepEqual(planPreseed({ storage_pools: [{ name: "default", driver: "dir" }] }, cur), []);
  assert.throws(() => planPreseed({ storage_pools: [{ name: "default", driver: "btrfs" }] }, cur), /has driver "dir", not "btrfs"/);
  assert.throws(() => planPreseed({ storage_pools: [{ name: "fast" }] }, cur), /Cannot create storage pool "fast": it has no driver/);
  assert.deepEqual(planPreseed({ storage_pools: [{ name: "fast", driver: "btrfs" }] }, cur), [
    { kind: "create", what: 'storage pool "fast"', collection: "/1.0/storage-pools", url: "/1.0/storage-pools/fast", body: { name: "fast", driver: "btrfs", description: "", config: {} } },
  ]);
});

test("--auto: lodgebr0 when missing, the default pool, eth0 and a root disk in the default profile; a second run plans nothing", () => {
  const fresh = current({ profiles: [profile("default", { description: "Default Lodge profile", devices: { root: ROOT } })] });
  const none = { networks: [], hostInterfaces: ["lo", "eth0"] };
  const { preseed, notes } = autoPreseed(fresh, none);
  assert.deepEqual(notes, []);
  assert.deepEqual(preseed, {
    storage_pools: [{ name: "default", driver: "dir" }],
    networks: [{ name: "lodgebr0", type: "bridge", config: { "ipv4.address": "auto", "ipv6.address": "auto" } }],
    profiles: [{ name: "default", devices: { eth0: { type: "nic", network: "lodgebr0", name: "eth0" } } }],
  });
  assert.deepEqual(planPreseed(preseed, fresh).map((s) => `${s.kind} ${s.what}`), ['create network "lodgebr0"', 'update profile "default"']);

  // Set up already: eth0 on a managed network of this server; nothing to do, nothing said.
  const lodgebr0 = net("lodgebr0", { config: { "ipv4.address": "10.5.5.1/24", "ipv6.address": "fd42::1/64" } });
  const done = current({
    networks: [lodgebr0],
    profiles: [profile("default", { devices: { root: ROOT, eth0: { type: "nic", network: "lodgebr0", name: "eth0" } } })],
  });
  const again = autoPreseed(done, { networks: [lodgebr0], hostInterfaces: ["lodgebr0"] });
  assert.deepEqual(again.notes, []);
  assert.deepEqual(planPreseed(again.preseed, done), []);

  // This server's lodgebr0 is used when the profile lost its eth0; one on the host that is not
  // this server's (another daemon's bridge) is passed over for the next free name.
  assert.deepEqual(autoPreseed(fresh, { networks: [lodgebr0], hostInterfaces: ["lodgebr0"] }).preseed.networks, undefined);
  const hostOnes = { networks: [net("lodgebr0", { managed: false })], hostInterfaces: ["lodgebr0", "lodgebr1"] };
  const next = autoPreseed(fresh, hostOnes).preseed;
  assert.equal(next.networks![0]!.name, "lodgebr2");
  assert.deepEqual(next.profiles![0]!.devices!.eth0, { type: "nic", network: "lodgebr2", name: "eth0" });

  // No root disk: one is added on the default pool. An eth0 not on a managed network is left alone, and said so.
  const odd = current({ profiles: [profile("default", { devices: { eth0: { type: "nic", nictype: "bridged", parent: "br9" } } })] });
  const auto = autoPreseed(odd, none, { networkAddress: "fd00::1" });
  assert.deepEqual(auto.preseed.profiles, [{ name: "default", devices: { root: ROOT } }]);
  assert.equal(auto.preseed.networks, undefined);
  assert.match(auto.notes[0]!, /eth0 is left as it is \(type=nic nictype=bridged parent=br9\)/);
  assert.deepEqual(auto.preseed.config, { "core.https_address": "[fd00::1]:8443" });
  assert.deepEqual(autoPreseed(odd, none, { networkAddress: "10.0.0.1", networkPort: 9443 }).preseed.config, { "core.https_address": "10.0.0.1:9443" });
  // --storage-backend other than the implicit pool's is refused by the plan, clearly.
  assert.throws(() => planPreseed(autoPreseed(odd, none, { storageBackend: "btrfs" }).preseed, odd), /storage pool "default" \(driver btrfs\): this server has no storage pool API yet/);
});

test("server set-up flags go alone, and the --auto ones only with --auto", () => {
  checkServerInitOptions({ auto: true, networkAddress: "10.0.0.1", networkPort: "8443", storageBackend: "dir" });
  checkServerInitOptions({});
  assert.throws(() => checkServerInitOptions({ auto: true, preseed: true }), /--auto and --preseed cannot be used together/);
  assert.throws(() => checkServerInitOptions({ preseed: true, storageBackend: "dir" }), /--storage-backend goes with --auto/);
  assert.throws(() => checkServerInitOptions({ auto: true, networkAddress: "1.2.3.4", networkPort: "99999" }), /Invalid --network-port "99999"/);
  assert.throws(() => checkServerInitOptions({ auto: true, networkPort: "8443" }), /--network-port goes with --network-address/);
});

/** A fake API that records calls and fails the call whose description matches `failOn`. */
function fakeApi(failOn?: RegExp): { api: InitApi; calls: string[] } {
  const calls: string[] = [];
  const call = (method: string) => async (path: string, body?: unknown, opts?: { headers?: Record<string, string> }) => {
    const line = `${method} ${path}${body === undefined ? "" : " " + JSON.stringify(body)}${opts?.headers?.["If-Match"] ? " if-match=" + opts.headers["If-Match"] : ""}`;
    calls.push(line);
    if (failOn?.test(line)) throw new Error(`Invalid network "lt2": unknown key "bogus"`);
    return {};
  };
  return { api: { post: call("POST"), put: call("PUT"), patch: call("PATCH"), delete: (p: string) => call("DELETE")(p) }, calls };
}

const STEPS: Step[] = [
  { kind: "config", what: "the server config", set: { "images.auto_update_interval": "0" }, previous: { "images.auto_update_interval": "" }, etag: "e0" },
  { kind: "create", what: 'network "lt1"', collection: "/1.0/networks", url: "/1.0/networks/lt1", body: { name: "lt1" } },
  { kind: "update", what: 'profile "default"', url: "/1.0/profiles/default", body: { description: "new" }, previous: { description: "old" }, etag: "e1" },
  { kind: "create", what: 'network "lt2"', collection: "/1.0/networks", url: "/1.0/networks/lt2", body: { name: "lt2", config: { bogus: "1" } } },
  { kind: "create", what: 'profile "p"', collection: "/1.0/profiles", url: "/1.0/profiles/p", body: { name: "p" } },
];

test("a plan is applied in order, updates guarded by the ETag that was read", async () => {
  const { api, calls } = fakeApi();
  await applyPlan(api, STEPS);
  assert.deepEqual(calls, [
    'PATCH /1.0 {"config":{"images.auto_update_interval":"0"}} if-match=e0',
    'POST /1.0/networks {"name":"lt1"}',
    'PUT /1.0/profiles/default {"description":"new"} if-match=e1',
    'POST /1.0/networks {"name":"lt2","config":{"bogus":"1"}}',
    'POST /1.0/profiles {"name":"p"}',
  ]);
});

test("a step that fails undoes the run's earlier steps, newest first, and names the failing entity", async () => {
  const { api, calls } = fakeApi(/POST \/1.0\/networks \{"name":"lt2"/);
  const err = await applyPlan(api, STEPS).then(
    () => assert.fail("applyPlan should have failed"),
    (e: unknown) => e as InitStepError,
  );
  assert.ok(err instanceof InitStepError);
  assert.equal(err.message, 'Failed to create network "lt2": Invalid network "lt2": unknown key "bogus"\nThis run\'s earlier changes were undone.');
  assert.deepEqual(calls.slice(4), [
    'PUT /1.0/profiles/default {"description":"old"}',
    "DELETE /1.0/networks/lt1",
    'PATCH /1.0 {"config":{"images.auto_update_interval":""}}',
  ]);
  // An undo that fails too is reported, and the other undos still run.
  const bad = fakeApi(/POST \/1.0\/networks \{"name":"lt2"|DELETE/);
  await assert.rejects(applyPlan(bad.api, STEPS), /Failed to create network "lt2".*\nUndoing this run's earlier changes failed too: /s);
  assert.equal(bad.calls.at(-1), 'PATCH /1.0 {"config":{"images.auto_update_interval":""}}');
});

test("--dump prints managed networks, pools (the implicit one too) and profiles; applying it back plans nothing", async () => {
  const networks = [net("lt2"), net("eth0", { managed: false, type: "physical" }), net("lt1", { description: "one" })];
  const profiles = [profile("web", { config: { "limits.cpu": "1" } }), profile("default", { devices: { root: ROOT } })];
  const dump = dumpPreseed({ "images.auto_update_interval": "0" }, networks, undefined, profiles);
  assert.deepEqual(dump.networks.map((n) => n.name), ["lt1", "lt2"]);
  assert.deepEqual(dump.networks[0], { config: { "ipv4.address": "10.9.9.1/24" }, description: "one", name: "lt1", type: "bridge", project: "default" });
  assert.deepEqual(dump.storage_pools, [{ config: {}, description: "", name: "default", driver: "dir" }]);
  assert.deepEqual(dump.profiles!.map((p) => p.name), ["default", "web"]);
  const { stringify } = await import("yaml");
  const again = await parsePreseed(stringify(dump));
  const cur = current({ config: { "images.auto_update_interval": "0" }, networks, profiles });
  assert.deepEqual(planPreseed(again, cur), []);
  assert.deepEqual(namesOf(again), { networks: ["lt1", "lt2"], pools: ["default"], profiles: ["default", "web"] });
});

/** Scripted answers; null once they run out (the input ended). */
function script(answers: string[]) {
  const asked: string[] = [];
  const said: string[] = [];
  return {
    ask: async (q: string) => (asked.push(q), answers.length ? answers.shift()! : null),
    say: (t: string) => void said.push(t),
    asked,
    said,
  };
}

test("the questions: a new bridge with its addresses, image updates, the preseed shown", async () => {
  const s = script(["", "lt9", "10.20.30.1/24", "none", "no", "yes"]);
  const cur = current();
  const r = await interview(s.ask, { networks: [net("lodgebr0")], hostInterfaces: ["lodgebr0", "lodgebr1"] }, cur, s.say);
  assert.match(s.asked[0]!, /^Would you like to create a new local network bridge\? \(yes\/no\) \[default=yes\]: $/);
  assert.match(s.asked[1]!, /What should the new bridge be called\? \[default=lodgebr2\]/, "lodgebr0 and lodgebr1 are taken: the next free name is offered");
  assert.deepEqual(r, {
    preseed: {
      storage_pools: [{ name: "default", driver: "dir" }],
      networks: [{ name: "lt9", type: "bridge", config: { "ipv4.address": "10.20.30.1/24", "ipv6.address": "none" } }],
      profiles: [{ name: "default", devices: { eth0: { type: "nic", network: "lt9", name: "eth0" } } }],
      config: { "images.auto_update_interval": "0" },
    },
    print: true,
    notes: [],
  });
});

test("the questions ask again after a bad answer, and take the defaults when the input ends", async () => {
  const s = script(["maybe", "y", "lodgebr0", "lt1", "10.0.0.300/24", "auto"]);
  const r = await interview(s.ask, { networks: [net("lodgebr0")], hostInterfaces: [] }, current(), s.say);
  assert.deepEqual(s.said, [
    "Invalid input, try again.\n\n",
    'The requested network bridge "lodgebr0" already exists. Please choose another name.\n\n',
    'Invalid IPv4 address "10.0.0.300/24": e.g. 10.0.8.1/24, auto or none.\n\n',
  ]);
  assert.deepEqual(r.preseed.networks, [{ name: "lt1", type: "bridge", config: { "ipv4.address": "auto", "ipv6.address": "auto" } }]);
  assert.equal(r.preseed.config, undefined, "images update by default");
  assert.equal(r.print, false);

  // No bridge, but an existing host interface: eth0 joins it (bridged for a bridge).
  const host = script(["no", "yes", "nope", "br9"]);
  const h = await interview(host.ask, { networks: [net("br9", { managed: false })], hostInterfaces: ["br9"] }, current(), host.say);
  assert.deepEqual(h.preseed.profiles, [{ name: "default", devices: { eth0: { type: "nic", nictype: "bridged", parent: "br9", name: "eth0" } } }]);
  assert.equal(h.preseed.networks, undefined);

  // A new bridge asked for takes the default profile's eth0 when that is a nic on a managed
  // network; another kind of nic stays (a note says so); a profile with nothing to add is left out.
  const onOld = current({ profiles: [profile("default", { devices: { root: ROOT, eth0: { type: "nic", network: "lodgebr0", name: "eth0" } } })] });
  const moved = await interview(script(["yes", "lt5"]).ask, { networks: [], hostInterfaces: [] }, onOld, () => {});
  assert.deepEqual(moved.preseed.profiles, [{ name: "default", devices: { eth0: { type: "nic", network: "lt5", name: "eth0" } } }]);
  assert.deepEqual(planPreseed(moved.preseed, onOld).at(-1), {
    kind: "update",
    what: 'profile "default"',
    url: "/1.0/profiles/default",
    body: { description: "", config: {}, devices: { root: ROOT, eth0: { type: "nic", network: "lt5", name: "eth0" } } },
    previous: { description: "", config: {}, devices: { root: ROOT, eth0: { type: "nic", network: "lodgebr0", name: "eth0" } } },
    etag: "etag-default",
  });
  const bridged = current({ profiles: [profile("default", { devices: { root: ROOT, eth0: { type: "nic", nictype: "bridged", parent: "br9" } } })] });
  const kept = await interview(script(["yes", "lt5"]).ask, { networks: [], hostInterfaces: [] }, bridged, () => {});
  assert.equal(kept.preseed.profiles, undefined);
  assert.match(kept.notes[0]!, /eth0 is left as it is \(type=nic nictype=bridged parent=br9\)/);

  // A question with no default cannot be answered by the end of the input.
  const ended = script(["no", "yes"]);
  await assert.rejects(interview(ended.ask, { networks: [], hostInterfaces: [] }, current(), ended.say), /The input ended before this question had an answer: Name of the existing bridge or host interface:/);
});

test("same() is deep equality of JSON values, key order aside", () => {
  assert.ok(same({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }));
  assert.ok(!same({ a: 1 }, { a: 1, b: undefined }));
  assert.ok(!same([1, 2], { 0: 1, 1: 2 }));
  assert.ok(!same({ a: "1" }, { a: 1 }));
});

const dirDefault = () => ({ name: "default", driver: "dir", description: "", config: {}, status: "Created", used_by: ["/1.0/profiles/default"] });
const facts = (over: Partial<AutoFacts> = {}): AutoFacts => ({ networks: [], hostInterfaces: [], storageDrivers: ["dir", "btrfs"], pools: ["default"], ...over });

test("--auto storage flags as lxd init's: a btrfs pool on a loop file, named by --storage-pool, becomes the root pool; a second run plans nothing", () => {
  const cur = current({ pools: [dirDefault()], profiles: [profile("default", { devices: { root: ROOT, eth0: { type: "nic", network: "lt1", name: "eth0" } } })], networks: [net("lt1")] });
  const f = facts({ networks: [net("lt1")] });
  const opts = { storageBackend: "btrfs", storageLoopSize: 5, storagePool: "fast" };
  assert.deepEqual(autoNames(opts).pools, ["default", "fast"]);
  const { preseed } = autoPreseed(cur, f, opts);
  assert.deepEqual(preseed.storage_pools, [{ name: "fast", driver: "btrfs", config: { size: "5GB" } }]);
  assert.deepEqual(preseed.profiles, [{ name: "default", devices: { root: { ...ROOT, pool: "fast" } } }]);
  assert.deepEqual(planPreseed(preseed, cur).map((s) => `${s.kind} ${s.what}`), ['create storage pool "fast"', 'update profile "default"']);
  assert.deepEqual((planPreseed(preseed, cur)[1] as { body: { devices: object } }).body.devices, { root: { ...ROOT, pool: "fast" }, eth0: { type: "nic", network: "lt1", name: "eth0" } });

  // Done: the pool exists with that driver and is the root pool; its config is not asked again.
  const fast = { name: "fast", driver: "btrfs", description: "", config: { size: "5GB", source: "/var/lib/lodge/disks/fast.img" }, status: "Created", used_by: [] };
  const done = current({ pools: [dirDefault(), fast], profiles: [profile("default", { devices: { root: { ...ROOT, pool: "fast" }, eth0: { type: "nic", network: "lt1", name: "eth0" } } })], networks: [net("lt1")] });
  const again = autoPreseed(done, facts({ networks: [net("lt1")], pools: ["default", "fast"] }), opts).preseed;
  assert.deepEqual(again.storage_pools, [{ name: "fast", driver: "btrfs" }]);
  assert.deepEqual(planPreseed(again, done), []);

  // Without flags the default pool is kept as it is, whatever its driver, and the root stays where it is.
  assert.deepEqual(autoPreseed(done, facts()).preseed.storage_pools, [{ name: "default", driver: "dir" }]);
  assert.deepEqual(planPreseed(autoPreseed(done, facts({ networks: [net("lt1")] })).preseed, done), []);
});

test("--auto storage flags: the other forms, and what lxd init refuses", () => {
  const fresh = current({ pools: [], profiles: [profile("default")] });
  const pools = (opts: AutoOptions, f = facts({ pools: [] })) => autoPreseed(fresh, f, opts).preseed.storage_pools;
  assert.deepEqual(pools({ storageBackend: "btrfs" }), [{ name: "default", driver: "btrfs" }]);
  assert.deepEqual(pools({ storageBackend: "btrfs", storagePool: "/srv/btrfs" }), [{ name: "default", driver: "btrfs", config: { source: "/srv/btrfs" } }]);
  assert.deepEqual(pools({ storageBackend: "btrfs", storageDevice: "/dev/loop9", storagePool: "disk" }), [{ name: "disk", driver: "btrfs", config: { source: "/dev/loop9" } }]);
  assert.deepEqual(pools({ storageBackend: "btrfs", storageLoopSize: 2 }), [{ name: "default", driver: "btrfs", config: { size: "2GB" } }]);
  assert.deepEqual(autoPreseed(fresh, facts({ pools: [] }), { storageBackend: "btrfs", storageLoopSize: 2 }).preseed.profiles, [
    { name: "default", devices: { root: { ...ROOT, pool: "default" }, eth0: { type: "nic", network: "lodgebr0", name: "eth0" } } },
  ]);
  assert.deepEqual(pools({ storageBackend: "dir" }), [{ name: "default", driver: "dir" }]);

  assert.throws(() => pools({ storageBackend: "zfs" }), /The requested backend "zfs" isn't available on this server \(available: dir, btrfs\)/);
  assert.throws(() => pools({ storageLoopSize: 5 }), /None of --storage-pool, --storage-create-device or --storage-create-loop may be used with the 'dir' backend/);
  assert.throws(() => pools({ storageBackend: "dir", storagePool: "x" }), /with the 'dir' backend/);
  assert.throws(() => pools({ storageBackend: "btrfs", storageLoopSize: 5, storageDevice: "/dev/sdb" }), /Only one of --storage-create-device or --storage-create-loop can be specified/);
  // Lodge makes a dir pool "default" when it first starts: a btrfs one needs another name.
  const withDefault = current({ pools: [dirDefault()] });
  assert.throws(
    () => autoPreseed(withDefault, facts(), { storageBackend: "btrfs", storageLoopSize: 5 }),
    /Storage pool "default" exists with driver "dir", not "btrfs": name a new btrfs pool with --storage-pool NAME and --storage-create-loop SIZE_GB/,
  );
  // A server that does not say which drivers it has: the server decides.
  assert.deepEqual(pools({ storageBackend: "btrfs" }, facts({ storageDrivers: undefined })), [{ name: "default", driver: "btrfs" }]);
});

test("--auto storage flags go with --auto, a loop size is a whole number of GB, a device a path", () => {
  checkServerInitOptions({ auto: true, storageBackend: "btrfs", storageCreateLoop: "5", storagePool: "fast" });
  assert.throws(() => checkServerInitOptions({ storageCreateLoop: "5" }), /--storage-create-loop goes with --auto/);
  assert.throws(() => checkServerInitOptions({ preseed: true, storagePool: "x" }), /--storage-pool goes with --auto/);
  assert.throws(() => checkServerInitOptions({ storageCreateDevice: "/dev/sdb" }), /--storage-create-device goes with --auto/);
  assert.throws(() => checkServerInitOptions({ auto: true, storageCreateLoop: "5GiB" }), /Invalid --storage-create-loop "5GiB": the loop file's size in GB/);
  assert.throws(() => checkServerInitOptions({ auto: true, storageCreateLoop: "0" }), /Invalid --storage-create-loop "0"/);
  assert.throws(() => checkServerInitOptions({ auto: true, storageCreateDevice: "sdb" }), /Invalid --storage-create-device "sdb"/);
});

test("the questions ask for a storage pool first when the server has the API: backend, loop size, and the root disk moves to it", async () => {
  const cur = current({ pools: [dirDefault()], profiles: [profile("default", { devices: { root: ROOT } })] });
  const s = script(["yes", "default", "fast", "zfs", "btrfs", "", "no", "0", "3", "no", "no", "yes", "no"]);
  const r = await interview(s.ask, { ...facts(), loopSizeGiB: 7 }, cur, s.say);
  assert.deepEqual(s.asked.slice(0, 8), [
    "Do you want to configure a new storage pool? (yes/no) [default=no]: ",
    "Name of the new storage pool [default=pool1]: ",
    "Name of the new storage pool [default=pool1]: ",
    "Name of the storage backend to use (dir, btrfs) [default=dir]: ",
    "Name of the storage backend to use (dir, btrfs) [default=dir]: ",
    "Create a new BTRFS pool? (yes/no) [default=yes]: ",
    "Would you like to use an existing empty block device (e.g. a disk or partition)? (yes/no) [default=no]: ",
    "Size in GiB of the new loop device (1GiB minimum) [default=7GiB]: ",
  ]);
  assert.deepEqual(s.said, ['The requested storage pool "default" already exists. Please choose another name.\n\n', "Invalid input, try again.\n\n", "Minimum size is 1GiB\n\n"]);
  assert.deepEqual(r.preseed.storage_pools, [{ name: "fast", driver: "btrfs", config: { size: "3GiB" } }]);
  assert.deepEqual(r.preseed.profiles, [{ name: "default", devices: { root: { ...ROOT, pool: "fast" } } }]);
  assert.deepEqual(planPreseed(r.preseed, cur).map((st) => `${st.kind} ${st.what}`), ['create storage pool "fast"', 'update profile "default"']);

  // Enter everywhere on a fresh server: no new pool (Lodge made "default"), nothing planned for storage.
  const enter = script([]);
  const def = await interview(enter.ask, facts(), cur, enter.say);
  assert.equal(enter.asked[0], "Do you want to configure a new storage pool? (yes/no) [default=no]: ");
  assert.deepEqual(def.preseed.storage_pools, [{ name: "default", driver: "dir" }]);

  // A block device, or an existing btrfs filesystem; dir asks nothing more; one driver, no choice.
  const dev = await interview(script(["y", "", "btrfs", "", "yes", "/dev/nope", "/dev/loop7"]).ask, { ...facts({ pools: [] }), isBlockDevice: (p) => p === "/dev/loop7" }, current({ pools: [] }), () => {});
  assert.deepEqual(dev.preseed.storage_pools, [{ name: "default", driver: "btrfs", config: { source: "/dev/loop7" } }]);
  const existing = await interview(script(["y", "b", "btrfs", "no", "/srv/btrfs"]).ask, facts(), cur, () => {});
  assert.deepEqual(existing.preseed.storage_pools, [{ name: "b", driver: "btrfs", config: { source: "/srv/btrfs" } }]);
  const onlyDir = script(["yes", "more"]);
  const d = await interview(onlyDir.ask, facts({ storageDrivers: ["dir"] }), cur, () => {});
  assert.deepEqual(d.preseed.storage_pools, [{ name: "more", driver: "dir" }]);
  assert.ok(!onlyDir.asked.some((q) => q.includes("backend")));
});
