import test from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import { busyboxImage } from "../helpers/busybox-image.js";
import { eventually } from "../helpers/eventually.js";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import { freeSubnet } from "../helpers/host-net.js";

// NIC security and limits as LXD has them, each shown by the attack or the load it stops:
// a container that forges its MAC or its IPv4 source is cut off; a rate limit slows a real
// transfer. All traffic stays on the test's own bridge.

/** The test network's /24 ("10.x.y"): one no route or address of the host overlaps. */
let net = "";

async function setup(t: test.TestContext) {
  net = await freeSubnet();
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const name = `lt${randomBytes(3).toString("hex")}`;
  t.after(() => d.client.delete(`/1.0/networks/${name}`).catch(() => {}));
  await d.lxc(["network", "create", name, `ipv4.address=${net}.1/24`, "ipv6.address=none"]);
  return { d, name, gateway: `${net}.1` };
}

const sh = (d: TestDaemon, c: string, cmd: string) => d.lxc(["exec", c, "--", "sh", "-c", cmd], { allowFail: true });
const pingGateway = async (d: TestDaemon, c: string, extra = "") => (await sh(d, c, `ping -c1 -W2 ${extra} ${net}.1`)).code === 0;

test("security.mac_filtering: a container that changes its MAC is cut off, and is back with its own", async (t) => {
  const { d, name } = await setup(t);
  await d.lxc(["init", "bb", "c1", "--network", name]);
  await d.lxc(["config", "device", "set", "c1", "eth0", `ipv4.address=${net}.10`, "security.mac_filtering=true"]);
  await d.lxc(["start", "c1"]);
  await eventually(async () => ((await pingGateway(d, "c1")) ? true : undefined), "c1 reaching the gateway");
  const own = (await sh(d, "c1", "cat /sys/class/net/eth0/address")).stdout.trim();
  // The attack: a forged source MAC (the ARP cache is flushed so the host must answer anew).
  await sh(d, "c1", `ip link set eth0 down; ip link set eth0 address 00:16:3e:66:66:66; ip link set eth0 up; ip addr replace ${net}.10/24 dev eth0; ip neigh flush all`);
  assert.equal(await pingGateway(d, "c1"), false, "forged MAC is dropped");
  await sh(d, "c1", `ip link set eth0 down; ip link set eth0 address ${own}; ip link set eth0 up; ip addr replace ${net}.10/24 dev eth0; ip neigh flush all`);
  assert.equal(await eventually(async () => ((await pingGateway(d, "c1")) ? true : undefined), "c1 back with its own MAC"), true);
  await d.lxc(["stop", "-f", "c1"]);
  assert.doesNotMatch((await runCommand("nft", ["list", "tables"])).stdout, /lodge-nic-c1/, "the filter goes at stop");
});

test("security.ipv4_filtering: packets from another source address are dropped; set and lifted live", async (t) => {
  const { d, name } = await setup(t);
  await d.lxc(["init", "bb", "c1", "--network", name]);
  await d.lxc(["config", "device", "set", "c1", "eth0", `ipv4.address=${net}.20`]);
  await d.lxc(["start", "c1"]);
  await eventually(async () => ((await pingGateway(d, "c1")) ? true : undefined), "c1's lease");
  await sh(d, "c1", `ip addr add ${net}.99/24 dev eth0`);
  assert.equal(await pingGateway(d, "c1", `-I ${net}.99`), true, "without filtering a second source works");
  await d.lxc(["config", "device", "set", "c1", "eth0", "security.ipv4_filtering=true"]);
  assert.equal(await pingGateway(d, "c1", `-I ${net}.99`), false, "a spoofed source is dropped");
  assert.equal(await pingGateway(d, "c1", `-I ${net}.20`), true, "its own address still works");
  await d.lxc(["config", "device", "unset", "c1", "eth0", "security.ipv4_filtering"]);
  assert.equal(await pingGateway(d, "c1", `-I ${net}.99`), true, "lifted live");
  const refused = await d.lxc(["config", "device", "set", "c1", "eth0", "ipv4.address=", "security.ipv4_filtering=true"], { allowFail: true });
  assert.match(refused.stderr, /needs the NIC's "ipv4.address"/);
});

/** Seconds the container takes to send `mb` MiB to a host listener on the bridge. */
async function sendSeconds(d: TestDaemon, c: string, mb: number): Promise<number> {
  let received = 0;
  const server = createServer((s) => s.on("data", (b) => (received += b.length)));
  await new Promise<void>((r) => server.listen(0, `${net}.1`, r));
  const port = (server.address() as AddressInfo).port;
  try {
    const start = Date.now();
    const r = await sh(d, c, `dd if=/dev/zero bs=1024 count=${mb * 1024} 2>/dev/null | nc ${net}.1 ${port}`);
    assert.equal(r.code, 0, r.stderr);
    await eventually(async () => (received >= mb * 1024 * 1024 ? true : undefined), "the transfer", 60_000);
    return (Date.now() - start) / 1000;
  } finally {
    server.close();
  }
}

test("limits.egress slows a real transfer out of the container; lifted, it is fast again", async (t) => {
  const { d, name } = await setup(t);
  await d.lxc(["launch", "bb", "c1", "--network", name]);
  await eventually(async () => ((await pingGateway(d, "c1")) ? true : undefined), "c1's lease");
  const free = await sendSeconds(d, "c1", 4);
  await d.lxc(["config", "device", "set", "c1", "eth0", "limits.egress=8Mbit"]);
  const limited = await sendSeconds(d, "c1", 4);
  // 4 MiB at 8 Mbit/s is about 4 s; unlimited on a local bridge it is a small fraction of that.
  assert.ok(limited > 2.5, `limited transfer took ${limited} s`);
  assert.ok(free < limited / 2, `unlimited ${free} s vs limited ${limited} s`);
  await d.lxc(["config", "device", "unset", "c1", "eth0", "limits.egress"]);
  assert.ok((await sendSeconds(d, "c1", 4)) < limited / 2, "lifted live");
});
