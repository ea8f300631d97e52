import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parse as parseYaml } from "yaml";
import type { Instance } from "../../src/api/instance.js";
import type { Operation } from "../../src/api/operation.js";
import type { Profile } from "../../src/api/profile.js";
import type { Network, NetworkForward, NetworkState } from "../../src/cli/network-types.js";
import { runCommand } from "../helpers/daemon.js";
import { cliDaemonForFile } from "../helpers/cli-daemon.js";

// `lodge network …` and `lodge network forward …` against a real lodged, with real bridges and
// dnsmasq. Bridges are host-global: every network is named `lt` + 4 random hex characters and
// removed when its test ends, with what uses it. One daemon for the file.
const cli = cliDaemonForFile();
const { lodge, ok } = cli;

/** A network name unique to this run, removed (with the instances and nics using it) when the test ends. */
function netName(t: TestContext): string {
  const name = "lt" + randomBytes(2).toString("hex");
  t.after(() => removeNetwork(name));
  return name;
}

async function removeNetwork(name: string): Promise<void> {
  for (const u of await cli.d.client.get<string[]>("/1.0/instances").catch(() => [] as string[])) {
    const n = u.split("/").pop()!.split("?")[0]!;
    await cli.d.client.wait(await cli.d.client.put<Operation>(`/1.0/instances/${n}/state`, { action: "stop", force: true })).catch(() => {});
    await cli.d.client.wait(await cli.d.client.delete<Operation>(`/1.0/instances/${n}`)).catch(() => {});
  }
  for (const p of await cli.d.client.get<Profile[]>("/1.0/profiles?recursion=1").catch(() => [] as Profile[])) {
    const devices = Object.fromEntries(Object.entries(p.devices).filter(([, dev]) => dev.network !== name && dev.parent !== name));
    if (Object.keys(devices).length !== Object.keys(p.devices).length) await cli.d.client.put(`/1.0/profiles/${p.name}`, { description: p.description, config: p.config, devices });
  }
  for (const n of [name, `${name}x`]) await cli.d.client.delete(`/1.0/networks/${n}`).catch(() => {});
}

const network = (name: string) => cli.d.client.get<Network>(`/1.0/networks/${name}`);

async function hostHas(iface: string): Promise<boolean> {
  return (await runCommand("ip", ["link", "show", iface], { allowFail: true })).code === 0;
}

test("network create, get, set, unset, show, edit, rename, list in every format, delete", async (t) => {
  const name = netName(t);
  assert.equal((await ok(["network", "create", name, "ipv4.address=auto", "ipv6.address=none", "--description", "Test bridge"])).stdout, `Network ${name} created\n`);
  assert.ok(await hostHas(name), "the bridge exists on the host");
  const made = await network(name);
  assert.equal(made.managed, true);
  assert.equal(made.type, "bridge");
  assert.equal(made.description, "Test bridge");
  assert.match(made.config["ipv4.address"]!, /^(\d+\.){3}\d+\/\d+$/, "auto is resolved to a subnet");
  assert.equal((await ok(["network", "get", name, "ipv6.address"])).stdout, "none\n");

  await ok(["network", "set", name, "user.role=test", "ipv4.nat=false"]);
  await ok(["network", "set", name, "user.other", "x"]);
  assert.equal((await ok(["network", "get", name, "user.role"])).stdout, "test\n");
  await ok(["network", "unset", name, "user.other"]);
  const unsetMissing = await lodge(["network", "unset", name, "user.other"]);
  assert.equal(unsetMissing.code, 2);
  assert.match(unsetMissing.stderr, new RegExp(`Config key "user.other" is not set on network "${name}"`));
  const badKey = await lodge(["network", "set", name, "ipv4.bogus=1"]);
  assert.equal(badKey.code, 1);
  assert.match(badKey.stderr, /ipv4\.bogus/);

  const shown = parseYaml((await ok(["network", "show", name])).stdout) as Network;
  assert.deepEqual(shown, await network(name));
  assert.deepEqual(JSON.parse((await ok(["network", "show", name, "--format", "json"])).stdout), shown);
  assert.equal(shown.config["user.role"], "test");
  assert.equal(shown.config["user.other"], undefined);

  // edit from stdin takes what show printed back (read-only fields ignored).
  const edited = (await ok(["network", "show", name])).stdout.replace("description: Test bridge", "description: Edited");
  await ok(["network", "edit", name], { input: edited });
  assert.equal((await network(name)).description, "Edited");
  assert.deepEqual((await network(name)).config, shown.config);
  const badEdit = await lodge(["network", "edit", name], { input: "devices: {}\n" });
  assert.equal(badEdit.code, 2);
  assert.match(badEdit.stderr, /"devices" cannot be edited/);

  const renamed = `${name}x`;
  assert.equal((await ok(["network", "rename", name, renamed])).stdout, `Network ${name} renamed to ${renamed}\n`);
  assert.ok(await hostHas(renamed));
  assert.ok(!(await hostHas(name)));

  const csv = (await ok(["network", "list", "--format", "csv"])).stdout;
  const row = csv.split("\n").find((l) => l.startsWith(`${renamed},`));
  assert.equal(row, `${renamed},bridge,YES,${shown.config["ipv4.address"]},none,Edited,0,CREATED`);
  assert.match((await ok(["network", "list"])).stdout, /\| NAME +\| TYPE +\| MANAGED \| IPV4 +\| IPV6 +\| DESCRIPTION +\| USED BY \| STATE +\|/);
  const json = JSON.parse((await ok(["network", "ls", "-f", "json"])).stdout) as Network[];
  assert.deepEqual(json.find((n) => n.name === renamed), await network(renamed));
  assert.ok((parseYaml((await ok(["network", "list", "--format", "yaml"])).stdout) as Network[]).some((n) => n.name === renamed));

  assert.equal((await ok(["network", "delete", renamed])).stdout, `Network ${renamed} deleted\n`);
  assert.ok(!(await hostHas(renamed)), "the bridge is gone from the host");
  const gone = await lodge(["network", "show", renamed]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /not found/i);
});

test("attach and detach: a nic on the network for an instance and for a profile", async (t) => {
  const name = netName(t);
  await ok(["network", "create", name, "ipv4.address=auto", "ipv6.address=none"]);
  await ok(["init", "bb", "c1"]);

  assert.equal((await ok(["network", "attach", name, "c1", "eth1", "eth1"])).stdout, "Device eth1 added to c1\n");
  assert.deepEqual((await cli.d.client.get<Instance>("/1.0/instances/c1")).devices.eth1, { type: "nic", network: name, name: "eth1" });
  const twice = await lodge(["network", "attach", name, "c1", "eth1"]);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /Device "eth1" already exists on instance "c1"/);
  assert.ok((await network(name)).used_by?.includes("/1.0/instances/c1"), "used_by names the instance");
  const inUse = await lodge(["network", "delete", name]);
  assert.equal(inUse.code, 1);
  assert.ok(await hostHas(name));

  // Without a device name the device is named after the network.
  await ok(["network", "attach", name, "c1"]);
  assert.deepEqual((await cli.d.client.get<Instance>("/1.0/instances/c1")).devices[name], { type: "nic", network: name });
  const which = await lodge(["network", "detach", name, "c1"]);
  assert.equal(which.code, 2);
  assert.match(which.stderr, /More than one device on instance "c1" uses network ".*" \(eth1, lt.*\): name the device/);
  assert.equal((await ok(["network", "detach", name, "c1", "eth1"])).stdout, "Device eth1 removed from c1\n");
  assert.equal((await ok(["network", "detach", name, "c1"])).stdout, `Device ${name} removed from c1\n`);
  assert.deepEqual(Object.keys((await cli.d.client.get<Instance>("/1.0/instances/c1")).devices), []);
  const none = await lodge(["network", "detach", name, "c1"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, new RegExp(`No device on instance "c1" uses network "${name}"`));

  await ok(["profile", "create", "nets"]);
  t.after(() => cli.d.client.delete("/1.0/profiles/nets").catch(() => {}));
  assert.equal((await ok(["network", "attach-profile", name, "nets", "eth0", "eth0"])).stdout, "Device eth0 added to nets\n");
  assert.deepEqual((await cli.d.client.get<Profile>("/1.0/profiles/nets")).devices, { eth0: { type: "nic", network: name, name: "eth0" } });
  await ok(["profile", "add", "c1", "nets"]);
  const fromProfile = await lodge(["network", "detach", name, "c1"]);
  assert.equal(fromProfile.code, 2);
  assert.match(fromProfile.stderr, /Device "eth0" comes from a profile/);
  await ok(["profile", "remove", "c1", "nets"]);
  assert.equal((await ok(["network", "detach-profile", name, "nets"])).stdout, "Device eth0 removed from nets\n");
  assert.deepEqual((await cli.d.client.get<Profile>("/1.0/profiles/nets")).devices, {});

  const unknown = await lodge(["network", "attach", "nosuchnet", "c1"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /not found/i);
});

test("an instance on the network gets a lease: lodge list, list-leases and info show it", async (t) => {
  const name = netName(t);
  await ok(["network", "create", name, "ipv4.address=auto", "ipv6.address=none"]);
  await ok(["init", "bb", "c2"]);
  await ok(["network", "attach", name, "c2", "eth0", "eth0"]);
  await ok(["start", "c2"]);

  let ipv4 = "";
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && !ipv4; ) {
    ipv4 = (await ok(["list", "c2", "-c", "4", "--format", "csv"])).stdout.trim();
    if (!ipv4) await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(ipv4, /^(\d+\.){3}\d+ \(eth0\)$/, "lodge list shows the instance's address, marked with its interface");
  const address = ipv4.split(" ")[0]!;

  const mac = (await cli.d.client.get<Instance>("/1.0/instances/c2")).config["volatile.eth0.hwaddr"]!;
  const leases = (await ok(["network", "list-leases", name, "--format", "csv"])).stdout;
  assert.ok(leases.split("\n").includes(`c2,${mac},${address},DYNAMIC`), `list-leases shows c2's lease:\n${leases}`);
  assert.match((await ok(["network", "list-leases", name])).stdout, /\| HOSTNAME +\| MAC ADDRESS +\| IP ADDRESS +\| TYPE +\|/);

  const info = (await ok(["network", "info", name])).stdout;
  const subnet = (await network(name)).config["ipv4.address"]!;
  assert.match(info, new RegExp(`^Name: ${name}\nMAC address: ([0-9a-f]{2}:){5}[0-9a-f]{2}\nMTU: \\d+\nState: up\nType: broadcast\n`));
  assert.ok(info.includes(`  inet\t${subnet} (global)\n`), info);
  assert.match(info, /Network usage:\n  Bytes received: \d+(\.\d+)?[kMG]?B\n/);
  const state = JSON.parse((await ok(["network", "info", name, "--format", "json"])).stdout) as NetworkState;
  assert.equal(state.state, "up");
  assert.ok(state.counters!.packets_received > 0, "DHCP went through the bridge");
});

test("forwards: create, set, get, unset, port add and remove, show, edit, list, delete", async (t) => {
  const name = netName(t);
  await ok(["network", "create", name, "ipv4.address=auto", "ipv6.address=none"]);
  const gateway = (await network(name)).config["ipv4.address"]!.split("/")[0]!;
  const target = gateway.replace(/\.\d+$/, ".20");
  const listen = `192.0.2.${2 + (randomBytes(1)[0]! % 250)}`;
  const fwd = () => cli.d.client.get<NetworkForward>(`/1.0/networks/${name}/forwards/${listen}`);

  assert.equal((await ok(["network", "forward", "create", name, listen, "--description", "web"])).stdout, `Network forward ${listen} created\n`);
  await ok(["network", "forward", "set", name, listen, `target_address=${target}`, "user.k=v"]);
  assert.equal((await ok(["network", "forward", "get", name, listen, "target_address"])).stdout, `${target}\n`);
  await ok(["network", "forward", "unset", name, listen, "user.k"]);
  const unsetMissing = await lodge(["network", "forward", "unset", name, listen, "user.k"]);
  assert.equal(unsetMissing.code, 2);

  await ok(["network", "forward", "port", "add", name, listen, "tcp", "80,443", target, "8080,8443"]);
  await ok(["network", "forward", "port", "add", name, listen, "tcp", "22", target]);
  await ok(["network", "forward", "port", "add", name, listen, "udp", "53", target]);
  assert.deepEqual((await fwd()).ports, [
    { description: "", protocol: "tcp", listen_port: "80,443", target_address: target, target_port: "8080,8443" },
    { description: "", protocol: "tcp", listen_port: "22", target_address: target, target_port: "" },
    { description: "", protocol: "udp", listen_port: "53", target_address: target, target_port: "" },
  ]);
  const badProto = await lodge(["network", "forward", "port", "add", name, listen, "icmp", "1", target]);
  assert.equal(badProto.code, 2);

  assert.equal((await ok(["network", "forward", "list", name, "--format", "csv"])).stdout, `${listen},web,${target},3\n`);
  assert.match((await ok(["network", "forward", "ls", name])).stdout, /\| LISTEN ADDRESS +\| DESCRIPTION +\| DEFAULT TARGET ADDRESS +\| PORTS +\|/);

  const several = await lodge(["network", "forward", "port", "remove", name, listen, "tcp"]);
  assert.equal(several.code, 2);
  assert.match(several.stderr, /2 ports match: use --force/);
  await ok(["network", "forward", "port", "remove", name, listen, "tcp", "22"]);
  await ok(["network", "forward", "port", "rm", name, listen, "udp"]);
  assert.deepEqual((await fwd()).ports?.map((p) => p.listen_port), ["80,443"]);
  const noMatch = await lodge(["network", "forward", "port", "remove", name, listen, "udp"]);
  assert.equal(noMatch.code, 2);
  assert.match(noMatch.stderr, /No matching port\(s\) found/);

  const shown = parseYaml((await ok(["network", "forward", "show", name, listen])).stdout) as NetworkForward;
  assert.deepEqual(shown, await fwd());
  await ok(["network", "forward", "edit", name, listen], { input: (await ok(["network", "forward", "show", name, listen])).stdout.replace("description: web", "description: edited") });
  assert.deepEqual(await fwd(), { ...shown, description: "edited" });

  assert.equal((await ok(["network", "forward", "delete", name, listen])).stdout, `Network forward ${listen} deleted\n`);
  assert.equal((await ok(["network", "forward", "list", name, "--format", "csv"])).stdout, "");
});

test("help on every network verb, and completion knows them", async () => {
  const verbs = ["list", "show", "create", "get", "set", "unset", "edit", "rename", "delete", "info", "list-leases", "attach", "attach-profile", "detach", "detach-profile", "forward"];
  const help = (await ok(["network", "--help"])).stdout;
  for (const v of verbs) assert.match(help, new RegExp(`^  ${v}\\b`, "m"), v);
  const forwardVerbs = ["list", "show", "create", "get", "set", "unset", "edit", "delete", "port"];
  for (const v of [...verbs.map((v) => [v]), ...forwardVerbs.map((v) => ["forward", v]), ["forward", "port", "add"], ["forward", "port", "remove"]]) {
    const r = await ok(["network", ...v, "--help"]);
    assert.match(r.stdout, new RegExp(`^Usage: lodge network ${v.join(" ")}\\b`));
  }
  const bash = (await ok(["completion", "bash"])).stdout;
  assert.match(bash, /\['lodge network'\]='list ls show create get set unset edit rename mv delete rm info list-leases attach attach-profile detach detach-profile forward'/);
  assert.match(bash, /\['lodge network forward port'\]='add remove rm'/);
  const complete = async (words: string) =>
    (await runCommand("bash", ["-c", `eval "$(cat)"; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _lodge; echo "\${COMPREPLY[*]}"`], { input: bash })).stdout.trim();
  assert.equal(await complete("lodge network de"), "delete detach detach-profile");
  assert.equal(await complete("lodge network create lt1 --type ''"), "bridge");
  assert.equal(await complete("lodge network list -f ''"), "table csv json yaml");
  assert.equal(await complete("lodge monitor --type l"), "logging lifecycle");
});
