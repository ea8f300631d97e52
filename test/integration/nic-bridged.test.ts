import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access, readdir, readFile, readlink } from "node:fs/promises";
import { basename, join } from "node:path";
import type { InstanceFull, InstanceState, InstanceStateNetwork } from "../../src/api/instance.js";
import type { Operation } from "../../src/api/operation.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { eventually as waitFor } from "../helpers/eventually.js";
import { freeSubnet } from "../helpers/host-net.js";

// Bridged NICs on a real Linux bridge that each test makes for itself (a name and a 10.x.y.0/24
// unique to the run), and the network part of the state that lodged reads from files: addresses,
// MAC, MTU, the host-side veth, counters; through the API, `lxc list`, `lxc info` and `lodge list`.

const ip = (args: string[]) => runCommand("ip", args);
const exists = (p: string) => access(p).then(() => true, () => false);

/** A bridge with .1 of a free /24, removed when the test ends (also when it fails). */
async function makeBridge(t: TestContext): Promise<{ name: string; net: string }> {
  const name = `lbt${randomBytes(5).toString("hex")}`; // 13 characters
  const net = await freeSubnet();
  t.after(() => runCommand("ip", ["link", "del", name], { allowFail: true }));
  await ip(["link", "add", name, "type", "bridge"]);
  await ip(["addr", "add", `${net}.1/24`, "dev", name]);
  await ip(["link", "set", name, "up"]);
  return { name, net };
}

async function daemonWithImage(t: TestContext): Promise<TestDaemon> {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  return d;
}

/**
 * Polls until `check` holds (10 s at most). A veth goes when the container's network namespace
 * is freed, which the kernel does in a work queue a moment after the last process exits.
 */
const eventually = (check: () => Promise<boolean>, what: string) => waitFor(check, what, 10_000, 20);

const randomMac = () => `00:16:3e:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;

const state = (d: TestDaemon, name: string) => d.client.get<InstanceState>(`/1.0/instances/${name}/state`);

/** The host's veth interfaces. */
async function hostVeths(): Promise<string[]> {
  const links = JSON.parse((await ip(["-j", "link", "show", "type", "veth"])).stdout) as { ifname: string }[];
  return links.map((l) => l.ifname);
}

/** Nothing of the daemon's instances left: no liblxc directories, volumes or monitors. */
async function assertNoLeftovers(d: TestDaemon): Promise<void> {
  const list = (dir: string) => readdir(join(d.dir, dir)).catch(() => [] as string[]);
  assert.deepEqual(await list("containers"), [], "no liblxc artefacts");
  assert.deepEqual(await list("storage-pools/default/containers"), [], "no volumes");
  assert.deepEqual(await d.client.get<string[]>("/1.0/instances"), [], "no instances");
  const ps = (await runCommand("ps", ["-eo", "args"])).stdout;
  assert.ok(!ps.includes(join(d.dir, "containers")), "no liblxc monitor of this daemon left");
}

/**
 * Gives eth0 .2 inside, then checks every view of the interface against what the host sees.
 * Returns the host-side veth.
 */
async function checkBridgedNic(d: TestDaemon, c: string, br: { name: string; net: string }, mac: string): Promise<string> {
  // The image's boot script leaves udhcpc on eth0 (no DHCP server here), and it flushes eth0's
  // addresses when it (re)starts: stop it once it runs, then configure eth0 statically. The
  // boot script always starts it when eth0 exists, so waiting for it is waiting for the boot;
  // it is polled until it is there (failing loudly if it never comes) and gone (a udhcpc
  // killed while it forks into the background may leave its child).
  const stopDhcp = [
    'i=0; until pidof udhcpc >/dev/null; do i=$((i+1)); [ $i -le 600 ] || { echo "udhcpc never started" >&2; exit 1; }; sleep 0.05; done',
    "while pidof udhcpc >/dev/null; do killall udhcpc 2>/dev/null; sleep 0.05; done",
  ].join("; ");
  await d.lxc(["exec", c, "--", "sh", "-c", stopDhcp]);
  await d.lxc(["exec", c, "--", "ip", "addr", "add", `${br.net}.2/24`, "dev", "eth0"]);

  const s = await state(d, c);
  const eth0 = s.network?.eth0 as InstanceStateNetwork;
  assert.ok(eth0, `eth0 in the state: ${JSON.stringify(s.network)}`);
  assert.deepEqual(eth0.addresses.find((a) => a.family === "inet"), { family: "inet", address: `${br.net}.2`, netmask: "24", scope: "global" });
  const ll = eth0.addresses.find((a) => a.family === "inet6");
  if (await exists("/proc/net/if_inet6")) assert.equal(ll?.scope, "link", "an IPv6 link-local address (the kernel has IPv6)");
  assert.equal(eth0.hwaddr, mac);
  assert.equal(eth0.mtu, 1400);
  assert.equal(eth0.state, "up");
  assert.equal(eth0.type, "broadcast");
  const veth = eth0.host_name;
  assert.match(veth, /^\S+$/, "a host-side interface");
  assert.equal(basename(await readlink(`/sys/class/net/${veth}/master`)), br.name, "the veth is a port of the test's bridge");
  assert.ok((await hostVeths()).includes(veth), "it is a veth");
  assert.equal((await readFile(`/sys/class/net/${veth}/mtu`, "utf8")).trim(), "1400");

  const lo = s.network!.lo!;
  assert.equal(lo.type, "loopback");
  assert.equal(lo.host_name, "");
  assert.equal(lo.hwaddr, "");
  assert.deepEqual(lo.addresses.find((a) => a.family === "inet"), { family: "inet", address: "127.0.0.1", netmask: "8", scope: "local" });

  // Traffic on the test's own bridge, counted on both sides.
  const before = eth0.counters;
  const ping = await d.lxc(["exec", c, "--", "ping", "-c1", "-W2", `${br.net}.1`], { allowFail: true });
  assert.equal(ping.code, 0, `ping the bridge from inside: ${ping.stdout}${ping.stderr}`);
  const after = (await state(d, c)).network!.eth0!.counters;
  assert.ok(after.packets_sent > before.packets_sent && after.bytes_sent > before.bytes_sent, "sent counters grow");
  assert.ok(after.packets_received > before.packets_received && after.bytes_received > before.bytes_received, "received counters grow");

  // The lxc client's views: the IPv4 column and `lxc info`'s network section.
  assert.equal((await d.lxc(["list", "--format", "csv", "-c", "n4", c])).stdout, `${c},${br.net}.2 (eth0)\n`);
  const info = (await d.lxc(["info", c])).stdout;
  const section = info.slice(info.indexOf("    eth0:"));
  assert.match(section, /Type: broadcast/);
  assert.match(section, /State: UP/);
  assert.match(section, new RegExp(`Host interface: ${veth}\\n`));
  assert.match(section, new RegExp(`MAC address: ${mac}\\n`));
  assert.match(section, /MTU: 1400\n/);
  assert.match(section, new RegExp(`inet: +${br.net.replace(/\./g, "\\.")}\\.2/24 \\(global\\)`));
  assert.match(info, /inet: +127\.0\.0\.1\/8 \(local\)/);

  // Our own client: one request for the list, the same column.
  assert.equal((await d.lodge(["list", "--format", "csv", "-c", "n4", c])).stdout, `${c},${br.net}.2 (eth0)\n`);
  const full = JSON.parse((await d.lodge(["list", "--format", "json", c])).stdout) as InstanceFull[];
  assert.equal(full[0]!.state!.network!.eth0!.host_name, veth);
  return veth;
}

async function deleteAndCheckGone(d: TestDaemon, c: string, veth: string, bridge: string): Promise<void> {
  await d.lxc(["delete", "--force", c]);
  await eventually(async () => !(await exists(`/sys/class/net/${veth}`)), `host veth ${veth} removed with the container`);
  await eventually(async () => (await readdir(`/sys/class/net/${bridge}/brif`)).length === 0, "no port left on the bridge");
  await assertNoLeftovers(d);
}

test("bridged NIC from the create request: address, MAC, MTU, host veth, traffic, counters; all gone after delete", async (t) => {
  const d = await daemonWithImage(t);
  const br = await makeBridge(t);
  const mac = randomMac();
  const op = await d.client.post<Operation>("/1.0/instances", {
    name: "n1",
    source: { type: "image", alias: "bb" },
    devices: { eth0: { type: "nic", nictype: "bridged", parent: br.name, hwaddr: mac, mtu: "1400", name: "eth0" } },
  });
  await d.client.wait(op);
  await d.lxc(["start", "n1"]);
  const veth = await checkBridgedNic(d, "n1", br, mac);

  // Frozen, the interfaces are still shown (as LXD); stopped, there are none.
  await d.lxc(["pause", "n1"]);
  assert.equal((await state(d, "n1")).network?.eth0?.host_name, veth);
  await d.lxc(["start", "n1"]);
  await d.lxc(["stop", "--force", "n1"]);
  assert.equal((await state(d, "n1")).network, null);
  await eventually(async () => !(await exists(`/sys/class/net/${veth}`)), "the veth goes when the container stops");
  assert.equal((await d.lxc(["list", "--format", "csv", "-c", "n4", "n1"])).stdout, "n1,\n");
  await d.lxc(["start", "n1"]);
  const again = (await state(d, "n1")).network!.eth0!;
  assert.equal(again.hwaddr, mac, "the MAC stays across restarts");
  await deleteAndCheckGone(d, "n1", again.host_name, br.name);
});

test("bridged NIC added with `lxc config device add`", async (t) => {
  const d = await daemonWithImage(t);
  const br = await makeBridge(t);
  const mac = randomMac();
  await d.lxc(["init", "bb", "n2"]);
  await d.lxc(["config", "device", "add", "n2", "eth0", "nic", "nictype=bridged", `parent=${br.name}`, `hwaddr=${mac}`, "mtu=1400", "name=eth0"]);
  await d.lxc(["start", "n2"]);
  const veth = await checkBridgedNic(d, "n2", br, mac);
  await deleteAndCheckGone(d, "n2", veth, br.name);
});

test("a parent bridge the host lacks: a 400 naming it at create and on device add, a clear start error; nothing left", async (t) => {
  const d = await daemonWithImage(t);
  const missing = `lbt${randomBytes(5).toString("hex")}`;
  const vethsBefore = new Set(await hostVeths());

  const r = await d.client.raw("POST", "/1.0/instances", {
    name: "m1",
    source: { type: "image", alias: "bb" },
    devices: { eth0: { type: "nic", nictype: "bridged", parent: missing, name: "eth0" } },
  });
  assert.equal(r.status, 400);
  assert.match((r.body as { error: string }).error, new RegExp(`Invalid device "eth0": parent bridge "${missing}" does not exist`));
  const notBridge = await d.client.raw("POST", "/1.0/instances", {
    name: "m1",
    source: { type: "image", alias: "bb" },
    devices: { eth0: { type: "nic", nictype: "bridged", parent: "lo" } },
  });
  assert.equal(notBridge.status, 400);
  assert.match((notBridge.body as { error: string }).error, /parent "lo" is not a bridge/);
  await assertNoLeftovers(d);

  // lxc config device add on an existing instance: refused, the device not stored.
  await d.lxc(["init", "bb", "m2"]);
  const add = await d.lxc(["config", "device", "add", "m2", "eth0", "nic", "nictype=bridged", `parent=${missing}`], { allowFail: true });
  assert.notEqual(add.code, 0);
  assert.match(add.stderr, new RegExp(`parent bridge "${missing}" does not exist`));
  assert.equal((await d.lxc(["config", "device", "list", "m2"])).stdout.trim(), "");

  // A bridge that goes away after the device was added: start fails naming it, no veth is left.
  const br = await makeBridge(t);
  await d.lxc(["config", "device", "add", "m2", "eth0", "nic", "nictype=bridged", `parent=${br.name}`, "name=eth0"]);
  await ip(["link", "del", br.name]);
  const start = await d.lxc(["start", "m2"], { allowFail: true });
  assert.notEqual(start.code, 0);
  assert.match(start.stderr, new RegExp(`nic eth0: parent bridge "${br.name}" does not exist on this host`));
  assert.equal((await d.lxc(["list", "--format", "csv", "-c", "s", "m2"])).stdout, "STOPPED\n");
  await d.lxc(["delete", "m2"]);
  await assertNoLeftovers(d);
  const newVeths = (await hostVeths()).filter((v) => !vethsBefore.has(v));
  for (const v of newVeths) assert.ok(await exists(`/sys/class/net/${v}/master`), `veth ${v} left without a bridge`);
});

test("bridged NICs hot-plugged into a running container and out again; volatile hwaddr and host_name as LXD", async (t) => {
  const d = await daemonWithImage(t);
  const br = await makeBridge(t);
  const get = async (key: string) => (await d.lxc(["config", "get", "n3", key])).stdout.trim();
  await d.lxc(["init", "bb", "n3"]);
  await d.lxc(["config", "device", "add", "n3", "eth0", "nic", "nictype=bridged", `parent=${br.name}`, "mtu=1400", "name=eth0"]);
  // The MAC is made once, when the device is added (in LXD's range); the host-side name only
  // while the instance runs, as LXD keeps them.
  const mac0 = await get("volatile.eth0.hwaddr");
  assert.match(mac0, /^00:16:3e(:[0-9a-f]{2}){3}$/);
  assert.equal(await get("volatile.eth0.host_name"), "");
  await d.lxc(["start", "n3"]);
  const host0 = await get("volatile.eth0.host_name");
  assert.match(host0, /^veth[0-9a-f]{8}$/);
  const eth0 = (await state(d, "n3")).network!.eth0!;
  assert.deepEqual([eth0.hwaddr, eth0.host_name], [mac0, host0], "the NIC runs with its volatile MAC and host name");

  // Added while it runs: there at once, inside and on the bridge, without a restart.
  const pid = (await state(d, "n3")).pid;
  await d.lxc(["config", "device", "add", "n3", "eth1", "nic", "nictype=bridged", `parent=${br.name}`, "mtu=1300", "name=eth1"]);
  assert.equal((await state(d, "n3")).pid, pid, "no restart");
  const mac1 = await get("volatile.eth1.hwaddr");
  const host1 = await get("volatile.eth1.host_name");
  assert.match(mac1, /^00:16:3e(:[0-9a-f]{2}){3}$/);
  assert.notEqual(mac1, mac0);
  const inside = (await d.lxc(["exec", "n3", "--", "sh", "-c", "cat /sys/class/net/eth1/address /sys/class/net/eth1/mtu /sys/class/net/eth1/operstate"])).stdout.split("\n");
  assert.deepEqual(inside.slice(0, 2), [mac1, "1300"]);
  assert.notEqual(inside[2], "down");
  assert.equal(basename(await readlink(`/sys/class/net/${host1}/master`)), br.name, "its host end is a port of the bridge");
  assert.equal((await readFile(`/sys/class/net/${host1}/mtu`, "utf8")).trim(), "1300");
  const eth1 = (await state(d, "n3")).network!.eth1!;
  assert.deepEqual([eth1.hwaddr, eth1.host_name, eth1.mtu], [mac1, host1, 1300]);
  // Traffic through it: an address on eth1 reaches the bridge.
  await d.lxc(["exec", "n3", "--", "ip", "addr", "add", `${br.net}.3/24`, "dev", "eth1"]);
  const ping = await d.lxc(["exec", "n3", "--", "ping", "-c1", "-W2", "-I", "eth1", `${br.net}.1`], { allowFail: true });
  assert.equal(ping.code, 0, `ping over the hot-plugged NIC: ${ping.stdout}${ping.stderr}`);

  // Two devices cannot name the same interface; a hot-plug that cannot be done (the name is
  // taken inside by an interface of the container's own) is refused: nothing stored, nothing
  // made on the host.
  const veths = new Set(await hostVeths());
  const dup = await d.lxc(["config", "device", "add", "n3", "eth2", "nic", "nictype=bridged", `parent=${br.name}`, "name=eth0"], { allowFail: true });
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /Devices "eth0" and "eth2" both name the interface "eth0" inside the instance/);
  await d.lxc(["exec", "n3", "--", "ip", "link", "add", "own0", "type", "veth", "peer", "name", "own1"]);
  const clash = await d.lxc(["config", "device", "add", "n3", "eth2", "nic", "nictype=bridged", `parent=${br.name}`, "name=own0"], { allowFail: true });
  assert.notEqual(clash.code, 0);
  assert.match(clash.stderr, /nic own0: the container already has an interface named own0/);
  assert.deepEqual((await d.lxc(["config", "device", "list", "n3"])).stdout.trim().split("\n").sort(), ["eth0", "eth1"]);
  assert.equal(await get("volatile.eth2.hwaddr"), "");
  assert.deepEqual(new Set(await hostVeths()), veths, "no veth made or lost on the host");

  // Removed while it runs: gone inside and on the host, its volatile keys too.
  await d.lxc(["config", "device", "remove", "n3", "eth1"]);
  assert.equal((await d.lxc(["exec", "n3", "--", "test", "-e", "/sys/class/net/eth1"], { allowFail: true })).code, 1);
  await eventually(async () => !(await exists(`/sys/class/net/${host1}`)), `host veth ${host1} removed with the device`);
  assert.equal(await get("volatile.eth1.hwaddr"), "");
  assert.equal(await get("volatile.eth1.host_name"), "");
  assert.equal((await state(d, "n3")).network!.eth1, undefined);

  // The MAC stays across a restart; stopped, the host-side name goes with the interface.
  await d.lxc(["restart", "--force", "n3"]);
  assert.equal((await state(d, "n3")).network!.eth0!.hwaddr, mac0);
  await d.lxc(["stop", "--force", "n3"]);
  assert.equal(await get("volatile.eth0.host_name"), "");
  assert.equal(await get("volatile.eth0.hwaddr"), mac0);
  await d.lxc(["start", "n3"]);
  const again = (await state(d, "n3")).network!.eth0!;
  assert.equal(again.hwaddr, mac0);
  assert.equal(again.host_name, await get("volatile.eth0.host_name"));
  await deleteAndCheckGone(d, "n3", again.host_name, br.name);
});
