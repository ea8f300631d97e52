import test from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { eventually } from "../helpers/eventually.js";
import { TestDaemon, runCommand } from "../helpers/daemon.js";

// What a network owns on the host comes back by itself: a killed dnsmasq is restarted, and
// after lodged is killed outright and started again, leases, NAT and forwards still work.
// NAT is shown with an "outside" that is the test's own network namespace: it has no route
// back to the container's subnet, so a reply reaches the container only through masquerade.

const id = () => randomBytes(3).toString("hex");

/** A network namespace joined to the host by a veth pair on 198.51.100.0/30 (TEST-NET-2). */
async function outside(t: test.TestContext): Promise<{ ns: string; address: string }> {
  const ns = `lto${id()}`;
  const host = `lth${id()}`;
  t.after(async () => {
    await runCommand("ip", ["link", "del", "dev", host], { allowFail: true });
    await runCommand("ip", ["netns", "del", ns], { allowFail: true });
  });
  await runCommand("ip", ["netns", "add", ns]);
  await runCommand("ip", ["link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await runCommand("ip", ["addr", "add", "198.51.100.1/30", "dev", host]);
  await runCommand("ip", ["link", "set", host, "up"]);
  await runCommand("ip", ["-n", ns, "addr", "add", "198.51.100.2/30", "dev", "eth0"]);
  await runCommand("ip", ["-n", ns, "link", "set", "eth0", "up"]);
  await runCommand("ip", ["-n", ns, "link", "set", "lo", "up"]);
  return { ns, address: "198.51.100.2" };
}

async function listedIPv4(d: TestDaemon, name: string): Promise<string | undefined> {
  const r = await d.lxc(["list", name, "--format", "csv", "-c", "4"]);
  return /(\d+\.\d+\.\d+\.\d+) \(eth0\)/.exec(r.stdout)?.[1];
}

async function dnsmasqPid(d: TestDaemon, network: string): Promise<number | undefined> {
  const text = await readFile(join(d.dir, "networks", network, "dnsmasq.pid"), "utf8").catch(() => "");
  const pid = Number(text.trim());
  return pid > 0 ? pid : undefined;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Connects to host:port and returns what the server sends first. */
function fetchLine(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let got = "";
    s.setTimeout(5000, () => s.destroy(new Error(`no answer from ${host}:${port}`)));
    s.on("data", (c) => (got += c.toString()));
    s.on("end", () => resolve(got));
    s.on("error", reject);
  });
}

test("a killed dnsmasq is restarted and serves leases again; after kill -9 of lodged, leases, NAT and forwards still work", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const name = `lt${id()}`;
  t.after(() => d.client.delete(`/1.0/networks/${name}`).catch(() => {}));
  await d.lxc(["network", "create", name, "ipv4.address=10.254.61.1/24", "ipv4.nat=true", "ipv6.address=none"]);
  const out = await outside(t);

  // The dnsmasq is killed: the watchdog brings a new one within seconds.
  const first = (await dnsmasqPid(d, name))!;
  assert.ok(first && alive(first), "dnsmasq runs");
  process.kill(first, "SIGKILL");
  const second = await eventually(async () => {
    const p = await dnsmasqPid(d, name);
    return p && p !== first && alive(p) ? p : undefined;
  }, "a new dnsmasq", 10_000);
  assert.notEqual(second, first);

  // ... and it serves a lease to a container started now.
  await d.lxc(["launch", "bb", "c1", "--network", name]);
  const ip = await eventually(() => listedIPv4(d, "c1"), "c1's lease");
  assert.match(ip, /^10\.254\.61\./);

  // A forward from the bridge address to a server in the container.
  await d.lxc(["exec", "c1", "--", "sh", "-c", "while true; do echo hello-from-c1 | nc -l -p 8080; done >/dev/null 2>&1 &"]);
  await d.lxc(["network", "forward", "create", name, "10.254.61.1"]);
  await d.lxc(["network", "forward", "port", "add", name, "10.254.61.1", "tcp", "18080", ip, "8080"]);
  assert.equal((await eventually(() => fetchLine("10.254.61.1", 18080).catch(() => undefined), "the forward")).trim(), "hello-from-c1");
  // Hairpin: the target itself reaches its own service through the forward.
  const self = await d.lxc(["exec", "c1", "--", "sh", "-c", "nc 10.254.61.1 18080 </dev/null"], { allowFail: true });
  assert.equal(self.stdout.trim(), "hello-from-c1", `through its own forward: ${self.stderr}`);

  // NAT: the container reaches the outside namespace, which has no route back to 10.254.61.0/24.
  assert.equal((await d.lxc(["exec", "c1", "--", "ping", "-c1", "-W2", out.address], { allowFail: true })).code, 0, "NAT carries c1's ping out and back");

  // lodged dies outright and comes back: the network, its lease, NAT and the forward still work.
  await d.kill9();
  await d.launch();
  assert.equal(await listedIPv4(d, "c1"), ip);
  const leases = await d.client.get<{ hostname: string; address: string }[]>(`/1.0/networks/${name}/leases`);
  assert.ok(leases.some((l) => l.hostname === "c1" && l.address === ip), JSON.stringify(leases));
  assert.equal((await d.lxc(["exec", "c1", "--", "ping", "-c1", "-W2", out.address], { allowFail: true })).code, 0, "NAT after the restart");
  assert.equal((await fetchLine("10.254.61.1", 18080)).trim(), "hello-from-c1", "the forward after the restart");
  // A container started after the restart still gets a lease.
  await d.lxc(["launch", "bb", "c2", "--network", name]);
  assert.match(await eventually(() => listedIPv4(d, "c2"), "c2's lease"), /^10\.254\.61\./);
});

test("a proxy device carries a TCP connection from host loopback to a service in a container on a managed network", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const name = `lt${id()}`;
  t.after(() => d.client.delete(`/1.0/networks/${name}`).catch(() => {}));
  await d.lxc(["network", "create", name, "ipv6.address=none"]);
  await d.lxc(["launch", "bb", "c1", "--network", name]);
  await eventually(() => listedIPv4(d, "c1"), "c1's lease");
  await d.lxc(["exec", "c1", "--", "sh", "-c", "while true; do echo proxied | nc -l -p 80; done >/dev/null 2>&1 &"]);
  const port = 20000 + Math.floor(Math.random() * 20000);
  await d.lxc(["config", "device", "add", "c1", "web", "proxy", `listen=tcp:127.0.0.1:${port}`, "connect=tcp:127.0.0.1:80"]);
  assert.equal((await eventually(() => fetchLine("127.0.0.1", port).catch(() => undefined), "the proxy")).trim(), "proxied");
});
