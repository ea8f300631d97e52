import test from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { busyboxImage } from "../helpers/busybox-image.js";
import { TestDaemon, runCommand } from "../helpers/daemon.js";

// NICs on host interfaces, through the real `lxc` client: macvlan on a parent interface and
// p2p (a veth pair whose host end stands alone), at start and hot-plugged. Traffic stays on
// the test's own veth pairs (198.18.0.0/15, the benchmarking range).

const id = () => randomBytes(3).toString("hex");

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

const sh = (d: TestDaemon, c: string, cmd: string) => d.lxc(["exec", c, "--", "sh", "-c", cmd], { allowFail: true });

/** `ip -d link show DEV` in the container's network namespace, with the host's iproute2 (busybox's has no -d). */
async function linkDetails(d: TestDaemon, c: string, dev: string): Promise<string> {
  const { pid } = await d.client.get<{ pid: number }>(`/1.0/instances/${c}/state`);
  return (await runCommand("nsenter", [`--net=/proc/${pid}/ns/net`, "--", "ip", "-d", "link", "show", "dev", dev], { allowFail: true })).stdout;
}

/** A parent for macvlans (one end of a veth pair: these kernels may lack dummy), with a host-side macvlan on it at `address`. */
async function macvlanParent(t: test.TestContext, address: string): Promise<string> {
  const parent = `ltd${id()}`;
  const hostSide = `ltm${id()}`;
  t.after(async () => {
    await runCommand("ip", ["link", "del", hostSide], { allowFail: true });
    await runCommand("ip", ["link", "del", parent], { allowFail: true });
  });
  await runCommand("ip", ["link", "add", parent, "type", "veth", "peer", "name", `${parent}p`]);
  await runCommand("ip", ["link", "set", parent, "up"]);
  await runCommand("ip", ["link", "set", `${parent}p`, "up"]);
  await runCommand("ip", ["link", "add", hostSide, "link", parent, "type", "macvlan", "mode", "bridge"]);
  await runCommand("ip", ["addr", "add", address, "dev", hostSide]);
  await runCommand("ip", ["link", "set", hostSide, "up"]);
  return parent;
}

test("macvlan NICs: at start and hot-plugged, they reach a sibling macvlan on the same parent; removed live", async (t) => {
  const d = await daemonWithImage(t);
  const parent = await macvlanParent(t, "198.18.7.1/24");
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["config", "device", "add", "c1", "eth0", "nic", "nictype=macvlan", `parent=${parent}`]);
  await d.lxc(["start", "c1"]);
  assert.match(await linkDetails(d, "c1", "eth0"), /macvlan mode bridge/);
  await sh(d, "c1", "ip addr add 198.18.7.2/24 dev eth0");
  assert.equal((await sh(d, "c1", "ping -c1 -W2 198.18.7.1")).code, 0, "the container reaches the host's macvlan");

  await d.lxc(["config", "device", "add", "c1", "eth1", "nic", "nictype=macvlan", `parent=${parent}`]);
  assert.match(await linkDetails(d, "c1", "eth1"), /macvlan mode bridge/, "hot-plugged");
  await sh(d, "c1", "ip addr add 198.18.7.3/24 dev eth1");
  assert.equal((await sh(d, "c1", "ping -c1 -W2 -I 198.18.7.3 198.18.7.1")).code, 0);
  await d.lxc(["config", "device", "remove", "c1", "eth1"]);
  assert.notEqual((await sh(d, "c1", "ip link show eth1")).code, 0, "removed live");

  const bad = await d.lxc(["config", "device", "add", "c1", "eth2", "nic", "nictype=macvlan", "parent=ltnosuch0"], { allowFail: true });
  assert.match(bad.stderr, /parent interface "ltnosuch0" does not exist on this host/);
});

test("p2p NICs: a veth pair whose host end is on its own; at start and hot-plugged", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["init", "bb", "c1"]);
  await d.lxc(["config", "device", "add", "c1", "eth0", "nic", "nictype=p2p"]);
  await d.lxc(["start", "c1"]);
  const hostName = (await d.client.get<{ config: Record<string, string> }>("/1.0/instances/c1")).config["volatile.eth0.host_name"]!;
  assert.match(hostName, /^veth[0-9a-f]{8}$/);
  const link = await runCommand("ip", ["-j", "-d", "link", "show", "dev", hostName]);
  const info = JSON.parse(link.stdout)[0];
  assert.equal(info.master, undefined, "the host end is on no bridge");
  assert.equal(info.linkinfo?.info_kind, "veth");
  await runCommand("ip", ["addr", "add", "198.18.9.1/30", "dev", hostName]);
  await sh(d, "c1", "ip addr add 198.18.9.2/30 dev eth0");
  assert.equal((await sh(d, "c1", "ping -c1 -W2 198.18.9.1")).code, 0, "the container reaches the host end");

  await d.lxc(["config", "device", "add", "c1", "eth1", "nic", "nictype=p2p"]);
  const hot = (await d.client.get<{ config: Record<string, string> }>("/1.0/instances/c1")).config["volatile.eth1.host_name"]!;
  assert.equal((await runCommand("ip", ["link", "show", "dev", hot], { allowFail: true })).code, 0, "hot-plugged host end exists");
  assert.equal((await sh(d, "c1", "ip link show eth1")).code, 0);
  await d.lxc(["config", "device", "remove", "c1", "eth1"]);
  assert.notEqual((await runCommand("ip", ["link", "show", "dev", hot], { allowFail: true })).code, 0, "its host end went with it");
  await d.lxc(["stop", "-f", "c1"]);
  assert.notEqual((await runCommand("ip", ["link", "show", "dev", hostName], { allowFail: true })).code, 0, "no host end left after stop");
});
