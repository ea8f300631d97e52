/**
 * The bridge network driver against the real host: a bridge, dnsmasq and nftables, with
 * clients in network namespaces of their own (busybox udhcpc and nslookup, node listeners).
 * Each test makes a network with a name and subnets unique to the run; everything it makes
 * (namespaces, veths, the bridge, the table, dnsmasq, the run directory) is removed in t.after
 * by those names, whether the test passes or not, and without the driver's help. No test
 * traffic leaves the bridge, its namespaces and loopback.
 */
import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResolvedNetwork } from "../../src/networks/driver.js";
import { BridgeDriver } from "../../src/networks/drivers/bridge.js";
import { runCommand } from "../helpers/daemon.js";
import { freeSubnet, namespaceClient, randomMac, randomUlaPrefix, type NamespaceClient } from "../helpers/host-net.js";

const exists = (p: string) => access(p).then(() => true, () => false);

interface Made {
  driver: BridgeDriver;
  net: ResolvedNetwork;
  runDir: string;
  /** "10.x.y" */
  sub: string;
  gateway: string;
  v6prefix: string;
}

/** A network with a fresh name, a free /24 and a random ULA /64, applied; cleaned up in t.after. */
async function network(t: TestContext, change: (n: ResolvedNetwork) => void = () => {}): Promise<Made> {
  const name = `lt${randomBytes(5).toString("hex")}`; // 12 characters
  const runDir = await mkdtemp(join(tmpdir(), "lodge-netdrv-"));
  const sub = await freeSubnet();
  const v6prefix = randomUlaPrefix();
  t.after(() => cleanUp(name, runDir));
  const n: ResolvedNetwork = {
    name,
    ipv4: { cidr: `${sub}.1/24`, nat: true, dhcp: true, dhcpRanges: [] },
    ipv6: { cidr: `${v6prefix}::1/64`, nat: true, dhcp: false, dhcpRanges: [], routerAdvertisements: true },
    dnsDomain: "lodgetest",
    dnsMode: "managed",
    hosts: [],
    forwards: [],
  };
  change(n);
  const driver = new BridgeDriver({ runDir });
  await driver.apply(n);
  return { driver, net: n, runDir, sub, gateway: `${sub}.1`, v6prefix };
}

/** Removes what a test's network may have left, by its names alone. */
async function cleanUp(name: string, runDir: string): Promise<void> {
  for (const pid of await dnsmasqsOf(runDir)) process.kill(pid, "SIGKILL");
  await runCommand("nft", ["delete", "table", "inet", `lodge-${name}`], { allowFail: true });
  await runCommand("ip", ["link", "del", name], { allowFail: true });
  await rm(runDir, { recursive: true, force: true });
}

/** Every dnsmasq process whose command line names a file under `runDir` (unique to the test). */
async function dnsmasqsOf(runDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.startsWith("/usr/sbin/dnsmasq\0") && cmdline.includes(`${runDir}/`)) pids.push(Number(entry));
  }
  return pids;
}

const pidFile = (m: Made) => join(m.runDir, m.net.name, "dnsmasq.pid");
const dnsmasqPid = async (m: Made) => Number((await readFile(pidFile(m), "utf8")).trim());

async function nftTable(name: string): Promise<{ chains: Map<string, { hook?: string; type?: string; prio?: number }>; rules: string[] }> {
  const r = await runCommand("nft", ["-j", "list", "table", "inet", `lodge-${name}`]);
  const items = (JSON.parse(r.stdout) as { nftables: Record<string, any>[] }).nftables;
  const chains = new Map<string, { hook?: string; type?: string; prio?: number }>();
  for (const i of items) if (i.chain) chains.set(i.chain.name, i.chain);
  // Rules as text, from the plain listing: easier to read in a failure than nft's JSON.
  const text = (await runCommand("nft", ["list", "table", "inet", `lodge-${name}`])).stdout;
  return { chains, rules: text.split("\n").map((l) => l.trim()).filter((l) => l && !l.endsWith("{") && l !== "}" && !l.startsWith("type ")) };
}

/**
 * Runs busybox udhcpc on the client's eth0 until it has a lease (or gives up); returns the
 * address dnsmasq offered, which the script also configures on eth0.
 */
async function dhcp(c: NamespaceClient, dir: string, hostname?: string): Promise<string> {
  const script = join(dir, "udhcpc.sh");
  await writeFile(
    script,
    [
      "#!/bin/sh",
      'case "$1" in bound|renew) ;; *) exit 0 ;; esac',
      'busybox ifconfig "$interface" "$ip" netmask "$subnet"',
      'echo "LEASE $ip"',
      "",
    ].join("\n"),
  );
  await chmod(script, 0o755);
  const name = hostname ? ["-x", `hostname:${hostname}`] : [];
  const r = await c.exec(["busybox", "udhcpc", "-i", c.iface, "-f", "-q", "-n", "-t", "8", "-T", "1", ...name, "-s", script], { timeoutMs: 20_000, allowFail: true });
  const m = /^LEASE (\S+)$/m.exec(r.stdout);
  assert.ok(m, `udhcpc got no lease (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  return m[1]!;
}

async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let delay = 10; !(await check()); delay = Math.min(delay * 2, 250)) {
    if (Date.now() > deadline) assert.fail(what);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** /proc/<pid>/stat's ppid and session id. */
async function procIds(pid: number): Promise<{ ppid: number; sid: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(f[1]), sid: Number(f[3]) };
}

test("apply makes the bridge, its addresses, the table and a dnsmasq of its own; applied again it changes nothing", async (t) => {
  const m = await network(t, (n) => (n.mtu = 1400));
  const { name } = m.net;

  const link = JSON.parse((await runCommand("ip", ["-j", "-d", "link", "show", "dev", name])).stdout)[0];
  assert.equal(link.linkinfo.info_kind, "bridge");
  assert.equal(link.mtu, 1400);
  assert.ok(link.flags.includes("UP"));
  assert.match(link.address, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  assert.equal(parseInt(link.address.slice(0, 2), 16) & 0x03, 0x02, "a locally administered unicast MAC");
  const addrs = JSON.parse((await runCommand("ip", ["-j", "addr", "show", "dev", name])).stdout)[0].addr_info as { local: string; prefixlen: number; scope: string; broadcast?: string }[];
  assert.equal(addrs.find((a) => a.local === m.gateway)?.broadcast, `${m.sub}.255`);
  const global = addrs.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`);
  assert.deepEqual(global.sort(), [`${m.sub}.1/24`, `${m.v6prefix}::1/64`].sort(), JSON.stringify(addrs));
  assert.equal((await readFile(`/proc/sys/net/ipv6/conf/${name}/accept_ra`, "utf8")).trim(), "0");
  assert.equal((await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim(), "1");
  assert.equal((await readFile("/proc/sys/net/ipv6/conf/all/forwarding", "utf8")).trim(), "1");

  const table = await nftTable(name);
  assert.equal(table.chains.get("postrouting")?.type, "nat");
  assert.equal(table.chains.get("forward")?.hook, "forward");
  assert.ok(table.rules.includes(`ip saddr ${m.sub}.0/24 oifname != "${name}" masquerade`), table.rules.join("\n"));
  assert.ok(table.rules.includes(`ip6 saddr ${m.v6prefix}::/64 oifname != "${name}" masquerade`), table.rules.join("\n"));
  assert.ok(table.rules.includes(`iifname "${name}" udp dport 67 accept`));

  // dnsmasq: ours, running as nobody, in a session of its own and no child of this process,
  // so it outlives the daemon that started it.
  const pid = await dnsmasqPid(m);
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  assert.match(status, /^Uid:\s+65534\s/m);
  const ids = await procIds(pid);
  assert.notEqual(ids.ppid, process.pid);
  assert.notEqual(ids.sid, (await procIds(process.pid)).sid);
  assert.equal(await m.driver.healthy(name), true);
  assert.deepEqual(await dnsmasqsOf(m.runDir), [pid]);

  const before = await Promise.all(["dnsmasq.conf", "nftables.conf", "dnsmasq.hosts"].map((f) => stat(join(m.runDir, name, f))));
  await m.driver.apply(m.net);
  await new BridgeDriver({ runDir: m.runDir }).apply(m.net); // a restarted daemon: nothing in memory
  assert.equal(await dnsmasqPid(m), pid, "dnsmasq was not restarted");
  assert.deepEqual(await dnsmasqsOf(m.runDir), [pid]);
  const after = await Promise.all(["dnsmasq.conf", "nftables.conf", "dnsmasq.hosts"].map((f) => stat(join(m.runDir, name, f))));
  assert.deepEqual(after.map((s) => s.mtimeMs), before.map((s) => s.mtimeMs), "no file was rewritten");
  const again = JSON.parse((await runCommand("ip", ["-j", "-d", "link", "show", "dev", name])).stdout)[0];
  assert.equal(again.address, link.address, "the MAC is derived from the name, the same every time");

  const st = await m.driver.state(name);
  assert.equal(st?.state, "up");
  assert.equal(st?.mtu, 1400);
  assert.equal(st?.type, "broadcast");
  assert.equal(st?.hwaddr, link.address);
  assert.ok(st?.addresses.some((a) => a.family === "inet" && a.address === m.gateway && a.netmask === "24" && a.scope === "global"));

  await m.driver.remove(name);
  assert.equal((await runCommand("ip", ["link", "show", "dev", name], { allowFail: true })).code !== 0, true, "bridge gone");
  assert.notEqual((await runCommand("nft", ["list", "table", "inet", `lodge-${name}`], { allowFail: true })).code, 0, "table gone");
  assert.deepEqual(await dnsmasqsOf(m.runDir), [], "dnsmasq gone");
  assert.equal(await exists(join(m.runDir, name)), false, "run directory gone");
  assert.equal(await m.driver.state(name), undefined);
  await m.driver.remove(name); // quiet when already gone
});

test("DHCP: a client gets a dynamic lease; a static host gets its own address and its name in DNS, without a dnsmasq restart", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const a = await namespaceClient(t, name);
  const dynamic = await dhcp(a, m.runDir);
  assert.match(dynamic, new RegExp(`^${m.sub.replace(/\./g, "\\.")}\\.(\\d+)$`));
  assert.notEqual(dynamic, m.gateway);
  const leases = await m.driver.leases(name);
  assert.ok(leases.some((l) => l.type === "dynamic" && l.address === dynamic && l.hwaddr === a.mac && typeof l.expires === "number"), JSON.stringify(leases));

  const pid = await dnsmasqPid(m);
  const b = await namespaceClient(t, name, randomMac());
  await m.driver.updateHosts(name, [{ hwaddr: b.mac, name: "static1", ipv4: `${m.sub}.50` }]);
  assert.equal(await dnsmasqPid(m), pid, "hosts are re-read on SIGHUP, not by a restart");
  assert.equal(await dhcp(b, m.runDir), `${m.sub}.50`);
  const ns = await b.exec(["busybox", "nslookup", "static1.lodgetest", m.gateway], { timeoutMs: 10_000 });
  assert.match(ns.stdout, new RegExp(`Name:\\s*static1\\.lodgetest\\s+Address:\\s*${m.sub.replace(/\./g, "\\.")}\\.50\\b`), ns.stdout);
  const withStatic = await m.driver.leases(name);
  assert.deepEqual(
    withStatic.filter((l) => l.address === `${m.sub}.50`),
    [{ hostname: "static1", hwaddr: b.mac, address: `${m.sub}.50`, type: "static" }],
  );
});

test("a killed dnsmasq is seen by healthy() and comes back with apply()", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const pid = await dnsmasqPid(m);
  process.kill(pid, "SIGKILL");
  await eventually(async () => !(await m.driver.healthy(name)), "healthy() still true after SIGKILL");
  await m.driver.apply(m.net);
  assert.equal(await m.driver.healthy(name), true);
  assert.notEqual(await dnsmasqPid(m), pid);
  const c = await namespaceClient(t, name);
  assert.match(await dhcp(c, m.runDir), new RegExp(`^${m.sub.replace(/\./g, "\\.")}\\.`));
});

test("IPv6: router advertisements give a client an address; turning IPv6 off removes the address and its rules and restarts dnsmasq", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const c = await namespaceClient(t, name);
  await eventually(async () => {
    const r = await c.exec(["ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "global"]);
    const info = (JSON.parse(r.stdout)[0]?.addr_info ?? []) as { local?: string }[];
    return info.some((i) => i.local?.startsWith(`${m.v6prefix}:`));
  }, "no SLAAC address from the bridge's router advertisements");

  const pid = await dnsmasqPid(m);
  const v4only = { ...m.net, ipv6: undefined };
  await m.driver.apply(v4only);
  const addrs = JSON.parse((await runCommand("ip", ["-j", "addr", "show", "dev", name])).stdout)[0].addr_info as { family: string; scope: string }[];
  assert.deepEqual(addrs.filter((a) => a.scope === "global").map((a) => a.family), ["inet"]);
  const table = await nftTable(name);
  assert.ok(!table.rules.some((r) => r.includes("ip6")), table.rules.join("\n"));
  assert.notEqual(await dnsmasqPid(m), pid, "a changed configuration restarts dnsmasq");
  assert.doesNotMatch(await readFile(join(m.runDir, name, "dnsmasq.conf"), "utf8"), /ra-stateless|::/);
  assert.equal(await m.driver.healthy(name), true);
});

test("a forward carries TCP from the host, and from its target to itself, to a listener behind the bridge", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const c = await namespaceClient(t, name);
  const target = await dhcp(c, m.runDir);
  const listener = spawn(
    "ip",
    ["netns", "exec", c.ns, process.execPath, "-e", "require('net').createServer((s) => s.end('hello ' + s.remoteAddress)).listen(8080, '0.0.0.0', () => console.log('ready'))"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  t.after(() => listener.kill("SIGKILL"));
  await new Promise<void>((res, rej) => {
    listener.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && res());
    listener.on("exit", () => rej(new Error("the listener exited")));
  });

  const pid = await dnsmasqPid(m);
  await m.driver.updateForwards(name, [{ listenAddress: m.gateway, ports: [{ protocol: "tcp", listenPorts: "18080", targetAddress: target, targetPorts: "8080" }] }]);
  assert.equal(await dnsmasqPid(m), pid, "forwards do not touch dnsmasq");
  const table = await nftTable(name);
  assert.equal(table.chains.get("prerouting")?.type, "nat");
  assert.equal(table.chains.get("output")?.hook, "output");

  // From the host: the output chain's DNAT.
  const fromHost = await new Promise<string>((res, rej) => {
    const s = net.connect(18080, m.gateway);
    let data = "";
    s.setTimeout(5000, () => s.destroy(new Error("timed out")));
    s.on("data", (d) => (data += d.toString()));
    s.on("end", () => res(data));
    s.on("error", rej);
  });
  assert.equal(fromHost, `hello ${m.gateway}`);

  // From the target itself to the listen address: prerouting's DNAT, and the hairpin masquerade
  // (the target sees the bridge address, so its answer goes back through the host).
  const hairpin = await c.exec(
    [process.execPath, "-e", `const s = require('net').connect(18080, '${m.gateway}'); s.setTimeout(5000, () => process.exit(2)); s.pipe(process.stdout)`],
    { timeoutMs: 10_000 },
  );
  assert.equal(hairpin.stdout, `hello ${m.gateway}`);

  await m.driver.updateForwards(name, []);
  assert.equal((await nftTable(name)).chains.has("prerouting"), false, "no forwards, no DNAT chains");
});

test("rename carries the leases to the new name and leaves nothing of the old one", async (t) => {
  const m = await network(t);
  const old = m.net.name;
  const c = await namespaceClient(t, old);
  const address = await dhcp(c, m.runDir);
  const to = { ...m.net, name: `lt${randomBytes(5).toString("hex")}` };
  t.after(() => cleanUp(to.name, m.runDir));
  await m.driver.rename(old, to);
  assert.notEqual((await runCommand("ip", ["link", "show", "dev", old], { allowFail: true })).code, 0);
  assert.notEqual((await runCommand("nft", ["list", "table", "inet", `lodge-${old}`], { allowFail: true })).code, 0);
  assert.equal(await exists(join(m.runDir, old)), false);
  assert.ok((await m.driver.leases(to.name)).some((l) => l.address === address && l.hwaddr === c.mac));
  assert.equal(await m.driver.healthy(to.name), true);
});

test("every kind of forward loads into nftables, also from a driver that only has the network's files (a restarted daemon)", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const restarted = new BridgeDriver({ runDir: m.runDir });
  await restarted.updateForwards(name, [
    {
      listenAddress: m.gateway,
      defaultTarget: `${m.sub}.9`,
      ports: [
        { protocol: "tcp", listenPorts: "80", targetAddress: `${m.sub}.5` },
        { protocol: "tcp", listenPorts: "8000-8002,9000", targetAddress: `${m.sub}.5`, targetPorts: "18000-18002,19000" },
        { protocol: "udp", listenPorts: "5000-5010", targetAddress: `${m.sub}.6`, targetPorts: "53" },
      ],
    },
    { listenAddress: `${m.v6prefix}::1`, ports: [{ protocol: "tcp", listenPorts: "443", targetAddress: `${m.v6prefix}::5`, targetPorts: "8443" }] },
  ]);
  const { rules } = await nftTable(name);
  assert.ok(rules.some((r) => r.startsWith(`ip daddr ${m.gateway} dnat ip to tcp dport map {`) && r.includes(`9000 : ${m.sub}.5 . 19000`)), rules.join("\n"));
  assert.ok(rules.includes(`ip6 daddr ${m.v6prefix}::1 tcp dport 443 dnat ip6 to [${m.v6prefix}::5]:8443`), rules.join("\n"));
  assert.ok(rules.includes(`ip daddr ${m.gateway} dnat ip to ${m.sub}.9`));
  // The rest of the table is still the network's.
  assert.ok(rules.includes(`ip saddr ${m.sub}.0/24 oifname != "${name}" masquerade`));
  // And apply() with the forwards it was given keeps them.
  await m.driver.apply({ ...m.net, forwards: [] });
  assert.equal((await nftTable(name)).chains.has("forwards"), false);
});

test("a dnsmasq that cannot start fails apply() with dnsmasq's reason, and the next good apply() starts it", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  await assert.rejects(m.driver.apply({ ...m.net, rawDnsmasq: "no-such-option=1" }), new RegExp(`dnsmasq for network "${name}" did not start: bad option at line \\d+ of `));
  assert.equal(await m.driver.healthy(name), false);
  assert.deepEqual(await dnsmasqsOf(m.runDir), []);
  await m.driver.apply(m.net);
  assert.equal(await m.driver.healthy(name), true);
});

test("a bridge deleted behind the driver's back comes back with apply(), and its dnsmasq serves DHCP, DNS and RAs on it again", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const pid = await dnsmasqPid(m);
  await runCommand("ip", ["link", "del", name]);
  await m.driver.apply(m.net);
  assert.notEqual(await dnsmasqPid(m), pid, "dnsmasq started on the old bridge was restarted");
  const c = await namespaceClient(t, name);
  await m.driver.updateHosts(name, [{ hwaddr: c.mac, name: "again", ipv4: `${m.sub}.60` }]);
  assert.equal(await dhcp(c, m.runDir), `${m.sub}.60`);
  assert.match(await lookup(c, m, "again.lodgetest"), new RegExp(`Address:\\s*${m.sub.replace(/\./g, "\\.")}\\.60\\b`));
  await eventually(async () => {
    const r = await c.exec(["ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "global"]);
    return ((JSON.parse(r.stdout)[0]?.addr_info ?? []) as { local?: string }[]).some((i) => i.local?.startsWith(`${m.v6prefix}:`));
  }, "no SLAAC address from the bridge's router advertisements");
});

/** What `busybox nslookup` in the client's namespace makes of `host` at the gateway. */
async function lookup(c: NamespaceClient, m: Made, host: string): Promise<string> {
  const r = await c.exec(["busybox", "nslookup", host, m.gateway], { timeoutMs: 10_000, allowFail: true });
  return r.stdout + r.stderr;
}

test("dns.mode: managed ignores the name a client gives itself, dynamic puts it under the domain", async (t) => {
  const managed = await network(t);
  const a = await namespaceClient(t, managed.net.name);
  const addressA = await dhcp(a, managed.runDir, "selfnamed");
  assert.doesNotMatch(await lookup(a, managed, "selfnamed.lodgetest"), new RegExp(addressA.replace(/\./g, "\\.")));

  const dynamic = await network(t, (n) => (n.dnsMode = "dynamic"));
  const b = await namespaceClient(t, dynamic.net.name);
  const addressB = await dhcp(b, dynamic.runDir, "selfnamed");
  assert.match(await lookup(b, dynamic, "selfnamed.lodgetest"), new RegExp(`Address:\\s*${addressB.replace(/\./g, "\\.")}\\b`));
});

test("stateful DHCPv6 over the whole subnet, with router advertisements, starts and serves", async (t) => {
  const m = await network(t, (n) => (n.ipv6 = { cidr: `${n.ipv6!.cidr}`, nat: false, dhcp: true, dhcpRanges: [] }));
  const conf = await readFile(join(m.runDir, m.net.name, "dnsmasq.conf"), "utf8");
  assert.match(conf, new RegExp(`^dhcp-range=${m.v6prefix}::2,${m.v6prefix}:ffff:ffff:ffff:ffff,64,1h$`, "m"));
  assert.match(conf, /^enable-ra$/m);
  assert.equal(await m.driver.healthy(m.net.name), true);
  // The RAs now say "managed": a client makes no SLAAC address (and has no DHCPv6 client here).
  const c = await namespaceClient(t, m.net.name);
  await eventually(async () => (await c.exec(["ip", "-6", "route", "show", "default"])).stdout.includes("via fe80::"), "no default route from the RAs");
});

test("dnsmasq keeps serving after the process that started it is killed with SIGKILL", async (t) => {
  const m = await network(t, (n) => (n.ipv6 = undefined));
  await m.driver.remove(m.net.name);
  const script = join(m.runDir, "daemon.mts");
  await writeFile(
    script,
    `import { BridgeDriver } from ${JSON.stringify(join(import.meta.dirname, "../../src/networks/drivers/bridge.ts"))};\n` +
      `await new BridgeDriver({ runDir: process.env.RUN_DIR! }).apply(JSON.parse(process.env.NET!));\n` +
      `process.kill(process.pid, "SIGKILL");\n`,
  );
  const r = await runCommand(process.execPath, ["--import", "tsx", script], { env: { RUN_DIR: m.runDir, NET: JSON.stringify(m.net) }, allowFail: true });
  assert.equal(r.code, 128, `the "daemon" was killed: ${r.stderr}`);
  assert.equal(await m.driver.healthy(m.net.name), true);
  const c = await namespaceClient(t, m.net.name);
  assert.match(await dhcp(c, m.runDir), new RegExp(`^${m.sub.replace(/\./g, "\\.")}\\.`));
});

test("a network that needs no dnsmasq (no DHCP, no RAs, dns.mode none) has none, and is healthy", async (t) => {
  const m = await network(t);
  const { name } = m.net;
  const quiet: ResolvedNetwork = {
    ...m.net,
    ipv4: { ...m.net.ipv4!, dhcp: false },
    ipv6: { ...m.net.ipv6!, routerAdvertisements: false },
    dnsMode: "none",
  };
  await m.driver.apply(quiet);
  assert.deepEqual(await dnsmasqsOf(m.runDir), [], "the running dnsmasq was stopped");
  assert.equal(await m.driver.healthy(name), true);
  const { rules } = await nftTable(name);
  assert.ok(!rules.some((r) => /dport (67|547|53)\b/.test(r)), rules.join("\n"));
  assert.ok(rules.includes(`ip saddr ${m.sub}.0/24 oifname != "${name}" masquerade`), "NAT stays");
  await m.driver.apply(m.net);
  assert.equal((await dnsmasqsOf(m.runDir)).length, 1);
  assert.equal(await m.driver.healthy(name), true);
});
