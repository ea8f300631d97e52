import test from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { busyboxImage } from "../helpers/busybox-image.js";
import { eventually } from "../helpers/eventually.js";
import { TestDaemon, runCommand } from "../helpers/daemon.js";

// Managed networks through the real `lxc` client (5.0.2): create with auto subnets, show, set,
// delete; containers on them get leases, reach each other by address and by name; static
// addresses; what is refused; and what the network owns on the host goes with it.

const netName = () => `lt${randomBytes(3).toString("hex")}`;

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

/** Creates a network through lxc; it is deleted at the end even when the test fails. */
async function network(t: test.TestContext, d: TestDaemon, config: string[] = []): Promise<string> {
  const name = netName();
  t.after(() => d.client.delete(`/1.0/networks/${name}`).catch(() => {}));
  const r = await d.lxc(["network", "create", name, ...config]);
  assert.equal(r.stdout, `Network ${name} created\n`);
  return name;
}

interface NetworkView {
  name: string;
  managed: boolean;
  type: string;
  config: Record<string, string>;
  used_by: string[];
}

const show = (d: TestDaemon, name: string) => d.client.get<NetworkView>(`/1.0/networks/${name}`);

/** The host owns nothing of the network any more: no bridge, no nft table, no dnsmasq. */
async function hostTraces(name: string): Promise<string[]> {
  const out: string[] = [];
  if ((await runCommand("ip", ["link", "show", "dev", name], { allowFail: true })).code === 0) out.push(`bridge ${name}`);
  const tables = (await runCommand("nft", ["list", "tables"], { allowFail: true })).stdout;
  if (tables.includes(name)) out.push(`nft table for ${name}`);
  const ps = (await runCommand("ps", ["-eo", "args"], { allowFail: true })).stdout;
  if (ps.split("\n").some((l) => l.includes("dnsmasq") && l.includes(`/${name}/`))) out.push(`dnsmasq for ${name}`);
  return out;
}

/** The IPv4 address `lxc list` shows for the container's eth0. */
async function listedIPv4(d: TestDaemon, name: string): Promise<string | undefined> {
  const r = await d.lxc(["list", name, "--format", "csv", "-c", "4"]);
  const m = /(\d+\.\d+\.\d+\.\d+) \(eth0\)/.exec(r.stdout);
  return m?.[1];
}

test("lxc network create with auto subnets, show, set and delete; nothing is left on the host", async (t) => {
  const d = await TestDaemon.start(t);
  const name = await network(t, d);
  const n = await show(d, name);
  assert.equal(n.managed, true);
  assert.equal(n.type, "bridge");
  assert.match(n.config["ipv4.address"]!, /^10\.\d+\.\d+\.1\/24$/, "auto resolves to a subnet, stored as LXD stores it");
  assert.match(n.config["ipv6.address"]!, /^fd42:[0-9a-f:]+::1\/64$/);
  assert.equal(n.config["ipv4.nat"], "true");
  const shown = await d.lxc(["network", "show", name]);
  assert.match(shown.stdout, new RegExp(`ipv4.address: ${n.config["ipv4.address"]!.replace(/\./g, "\\.")}`));
  // The bridge carries the address.
  const addr = await runCommand("ip", ["-j", "addr", "show", "dev", name]);
  assert.ok(JSON.stringify(JSON.parse(addr.stdout)).includes(n.config["ipv4.address"]!.split("/")[0]!));

  await d.lxc(["network", "set", name, "ipv4.address", "10.251.17.1/24"]);
  assert.equal((await show(d, name)).config["ipv4.address"], "10.251.17.1/24");
  assert.match((await runCommand("ip", ["-4", "addr", "show", "dev", name])).stdout, /10\.251\.17\.1\/24/);
  assert.equal((await d.lxc(["network", "get", name, "ipv4.address"])).stdout.trim(), "10.251.17.1/24");

  const listed = await d.lxc(["network", "list", "--format", "csv"]);
  assert.match(listed.stdout, new RegExp(`^${name},bridge,YES,10\\.251\\.17\\.1/24,`, "m"));
  const lo = await show(d, "lo");
  assert.deepEqual([lo.managed, lo.type], [false, "loopback"], "host interfaces are networks too, unmanaged");
  assert.ok((await d.client.get<string[]>("/1.0/networks")).includes("/1.0/networks/lo"));

  assert.equal((await d.lxc(["network", "delete", name])).stdout, `Network ${name} deleted\n`);
  assert.deepEqual(await hostTraces(name), []);
});

test("refused with a clear error: overlapping and malformed subnets, a network in use", async (t) => {
  const d = await daemonWithImage(t);
  const a = await network(t, d, ["ipv4.address=10.252.31.1/24", "ipv6.address=none"]);
  const b = netName();
  t.after(() => d.client.delete(`/1.0/networks/${b}`).catch(() => {}));
  const overlap = await d.lxc(["network", "create", b, "ipv4.address=10.252.31.129/25", "ipv6.address=none"], { allowFail: true });
  assert.notEqual(overlap.code, 0);
  assert.match(overlap.stderr, new RegExp(`10\\.252\\.31\\.129/25 overlaps .*${a}`));
  // A host route: loopback's 127.0.0.0/8 is in every host's local table.
  const route = await d.lxc(["network", "create", b, "ipv4.address=127.0.9.1/24", "ipv6.address=none"], { allowFail: true });
  assert.match(route.stderr, /overlaps route 127\.0\.0\.0\/8/);
  const bad = await d.lxc(["network", "create", b, "ipv4.address=10.300.0.1/24"], { allowFail: true });
  assert.match(bad.stderr, /Invalid value for network config key "ipv4.address"/);
  assert.deepEqual(await hostTraces(b), [], "a refused create leaves nothing");
  await assert.rejects(d.client.get(`/1.0/networks/${b}`), /not found/);

  await d.lxc(["init", "bb", "c1", "--network", a]);
  const inUse = await d.lxc(["network", "delete", a], { allowFail: true });
  assert.notEqual(inUse.code, 0);
  assert.match(inUse.stderr, /The network is currently in use/);
  assert.deepEqual((await show(d, a)).used_by, ["/1.0/instances/c1"]);
  const missing = await d.lxc(["init", "bb", "c2", "--network", "nosuchnet"], { allowFail: true });
  assert.match(missing.stderr, /Network "nosuchnet" not found/);
  // The server refuses it too, when a client does not look first.
  await assert.rejects(
    d.client.post("/1.0/instances", { name: "c2", source: { type: "image", alias: "bb" }, devices: { eth0: { type: "nic", network: "nosuchnet" } } }),
    /Invalid device "eth0": network "nosuchnet" not found/,
  );
  await assert.rejects(d.client.get("/1.0/instances/c2"), /not found/);
});

test("containers on a network get leases, shown in lxc list, and reach each other by address and by name", async (t) => {
  const d = await daemonWithImage(t);
  const name = await network(t, d, ["ipv6.address=none", "dns.domain=lodgetest"]);
  await d.lxc(["launch", "bb", "c1", "--network", name]);
  await d.lxc(["launch", "bb", "c2", "--network", name]);
  const ip1 = await eventually(() => listedIPv4(d, "c1"), "c1's lease");
  const ip2 = await eventually(() => listedIPv4(d, "c2"), "c2's lease");
  const subnet = (await show(d, name)).config["ipv4.address"]!.split(".").slice(0, 3).join(".");
  assert.ok(ip1.startsWith(`${subnet}.`) && ip2.startsWith(`${subnet}.`), `${ip1} and ${ip2} are in ${subnet}.0/24`);
  const leases = await d.client.get<{ hostname: string; address: string; type: string }[]>(`/1.0/networks/${name}/leases`);
  assert.ok(leases.some((l) => l.hostname === "c1" && l.address === ip1), JSON.stringify(leases));

  assert.equal((await d.lxc(["exec", "c1", "--", "ping", "-c1", "-W2", ip2], { allowFail: true })).code, 0, "c1 reaches c2 by address");
  const byName = await d.lxc(["exec", "c1", "--", "nslookup", "c2.lodgetest"], { allowFail: true });
  assert.match(byName.stdout, new RegExp(ip2.replace(/\./g, "\\.")), `c2.lodgetest resolves: ${byName.stdout}${byName.stderr}`);
  assert.equal((await d.lxc(["exec", "c1", "--", "ping", "-c1", "-W2", "c2.lodgetest"], { allowFail: true })).code, 0, "c1 reaches c2 by name");
  // The gateway (the host's bridge address) answers too.
  const gw = (await show(d, name)).config["ipv4.address"]!.split("/")[0]!;
  assert.equal((await d.lxc(["exec", "c1", "--", "ping", "-c1", "-W2", gw], { allowFail: true })).code, 0, "c1 reaches the host");
});

test("a static ipv4.address is honoured, and one outside the subnet or taken is refused", async (t) => {
  const d = await daemonWithImage(t);
  const name = await network(t, d, ["ipv4.address=10.253.44.1/24", "ipv6.address=none"]);
  await d.lxc(["init", "bb", "c1", "--network", name]);
  await d.lxc(["config", "device", "set", "c1", "eth0", "ipv4.address=10.253.44.77"]);
  await d.lxc(["start", "c1"]);
  assert.equal(await eventually(() => listedIPv4(d, "c1"), "c1's static lease"), "10.253.44.77");
  const leases = await d.client.get<{ hostname: string; address: string; type: string }[]>(`/1.0/networks/${name}/leases`);
  assert.ok(leases.some((l) => l.hostname === "c1" && l.address === "10.253.44.77" && l.type === "static"), JSON.stringify(leases));

  await d.lxc(["init", "bb", "c2", "--network", name]);
  const taken = await d.lxc(["config", "device", "set", "c2", "eth0", "ipv4.address=10.253.44.77"], { allowFail: true });
  assert.match(taken.stderr, /already used by instance "c1"/);
  const outside = await d.lxc(["config", "device", "set", "c2", "eth0", "ipv4.address=10.9.9.9"], { allowFail: true });
  assert.match(outside.stderr, /10\.9\.9\.9 is outside network/);
});

test("auto IPv6: a random ULA /64 with router advertisements; a container takes its address by SLAAC", async (t) => {
  const d = await daemonWithImage(t);
  const name = await network(t, d, ["ipv4.address=none"]);
  const prefix = (await show(d, name)).config["ipv6.address"]!;
  assert.match(prefix, /^fd42:[0-9a-f:]+::1\/64$/);
  await d.lxc(["launch", "bb", "c1", "--network", name]);
  const base = prefix.split("::")[0]!;
  const v6 = await eventually(async () => {
    const r = await d.lxc(["list", "c1", "--format", "csv", "-c", "6"]);
    return new RegExp(`(${base}:[0-9a-f:]+) \\(eth0\\)`).exec(r.stdout)?.[1];
  }, "c1's SLAAC address", 30_000);
  assert.ok(v6.startsWith(`${base}:`), v6);
  // The address may still be tentative (duplicate address detection) when it first shows.
  await eventually(async () => ((await d.lxc(["exec", "c1", "--", "ping", "-c1", "-W1", prefix.split("/")[0]!], { allowFail: true })).code === 0 ? true : undefined), "c1 reaching the host over IPv6", 10_000);
});

test("after a host restart (bridge, dnsmasq and nft table all gone while lodged was down), lodged brings the network back", async (t) => {
  const d = await daemonWithImage(t);
  const name = await network(t, d, ["ipv4.address=10.247.5.1/24", "ipv4.nat=true", "ipv6.address=none"]);
  await d.stop();
  // What a reboot takes away: the bridge, the dnsmasq, the nft table.
  const pid = Number((await runCommand("cat", [`${d.dir}/networks/${name}/dnsmasq.pid`], { allowFail: true })).stdout.trim());
  if (pid > 0) process.kill(pid, "SIGKILL");
  await runCommand("ip", ["link", "del", name], { allowFail: true });
  await runCommand("nft", ["delete", "table", "inet", `lodge-${name}`], { allowFail: true });
  assert.ok((await hostTraces(name)).length === 0 || (await hostTraces(name)).every((x) => x.startsWith("dnsmasq")), "the host has lost the network");
  await d.launch();
  const traces = await eventually(async () => {
    const tr = await hostTraces(name);
    return tr.length === 3 ? tr : undefined;
  }, "bridge, table and dnsmasq back");
  assert.deepEqual(traces.sort(), [`bridge ${name}`, `dnsmasq for ${name}`, `nft table for ${name}`]);
  await d.lxc(["launch", "bb", "c1", "--network", name]);
  assert.match(await eventually(() => listedIPv4(d, "c1"), "c1's lease"), /^10\.247\.5\./);
});
