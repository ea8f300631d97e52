import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { eventually } from "../helpers/eventually.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { tinyVmImage } from "../helpers/vm-image.js";

// A VM's serial console attached interactively, a NIC on a managed network, and limits, through
// the real `lxc` client (5.0.2) under TCG, on the tiny VM image (busybox: a root shell on ttyS0,
// udhcpc on eth0).

async function daemonWithTiny(t: test.TestContext): Promise<TestDaemon> {
  const d = await TestDaemon.start(t);
  const img = await tinyVmImage();
  await d.lxc(["image", "import", img.metadata, img.rootfs, "--alias", "tiny"]);
  return d;
}

async function agentReady(d: TestDaemon, name: string): Promise<void> {
  await eventually(async () => (await d.lxc(["exec", name, "--", "true"], { allowFail: true })).code === 0, `the agent of ${name}`, 120_000, 500);
}

interface Terminal {
  /** Everything the terminal showed so far. */
  readonly output: string;
  write(s: string): void;
  /** Resolves once the output matches re (the output so far counts). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code; rejects after timeoutMs. */
  exited(timeoutMs?: number): Promise<number>;
}

/**
 * A command on a pseudo-terminal (`script -qec`), fed as a person types: each input is written
 * when the test decides, after what it waits for has shown. Killed when the test ends.
 */
function terminal(t: test.TestContext, command: string, env: Record<string, string>): Terminal {
  const child = spawn("script", ["-qec", command, "/dev/null"], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  const listeners = new Set<() => void>();
  const onData = (c: Buffer) => {
    output += c.toString();
    for (const l of listeners) l();
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  child.stdin.on("error", () => {});
  const exit = new Promise<number>((r) => child.on("close", (code, signal) => r(code ?? (signal ? 128 : 1))));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    get output() {
      return output;
    },
    write: (s) => child.stdin.write(s),
    waitFor: (re, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!re.test(output)) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`the terminal showed nothing matching ${re} in ${timeoutMs} ms; it showed:\n${output}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
    exited: (timeoutMs = 15_000) =>
      Promise.race([exit, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms; it showed:\n${output}`)), timeoutMs).unref())]),
  };
}

/**
 * ctrl+a, then q, as typed: lxc looks at the first byte of each read of its input only, so the
 * two keys in one write would lose the q.
 */
async function detach(term: Terminal): Promise<void> {
  term.write("\x01");
  await new Promise((r) => setTimeout(r, 300));
  term.write("q");
}

test("lxc console attaches to a VM's serial shell, which answers a command; ctrl+a q detaches", { timeout: 300_000 }, async (t) => {
  const d = await daemonWithTiny(t);
  await d.lxc(["launch", "tiny", "v1", "--vm"]);
  await agentReady(d, "v1"); // the guest has booted: init has started the shell on ttyS0 too

  const term = terminal(t, "lxc console v1", { LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") });
  await term.waitFor(/To detach from the console, press: <ctrl>\+a q/);
  // An empty line first: the shell prints a fresh prompt, proof that keys reach it.
  term.write("\r");
  await term.waitFor(/[$#] /);
  term.write("echo answer-$((6*7)) from $(hostname) as $(id -u) on $(tty)\r");
  await term.waitFor(/answer-42 from \S+ as \d+ on \/dev\/ttyS0/);
  await detach(term);
  assert.equal(await term.exited(), 0, `lxc console did not detach cleanly:\n${term.output}`);

  // Detaching left the VM and its console as they were: a second attach works too.
  assert.equal(JSON.parse((await d.lxc(["query", "/1.0/instances/v1/state"])).stdout).status, "Running");
  const again = terminal(t, "lxc console v1", { LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") });
  await again.waitFor(/To detach/);
  again.write("echo again-$((1+1))\r");
  await again.waitFor(/again-2/);
  await detach(again);
  assert.equal(await again.exited(), 0);
  await d.lxc(["delete", "-f", "v1"]);
});

/** The host side of a tap: its kind, its bridge, whether it exists. */
async function hostLink(name: string): Promise<{ kind?: string; master?: string } | undefined> {
  const r = await runCommand("ip", ["-j", "-d", "link", "show", "dev", name], { allowFail: true });
  if (r.code !== 0) return undefined;
  const l = (JSON.parse(r.stdout) as { master?: string; linkinfo?: { info_kind?: string } }[])[0]!;
  return { kind: l.linkinfo?.info_kind, master: l.master };
}

test("a VM on a managed network gets a tap on the bridge and an address by DHCP; limits show in the guest; delete removes the tap", { timeout: 300_000 }, async (t) => {
  const d = await daemonWithTiny(t);
  const net = `lv${randomBytes(3).toString("hex")}`;
  t.after(() => d.client.delete(`/1.0/networks/${net}`).catch(() => {}));
  await d.lxc(["network", "create", net, "ipv6.address=none"]);
  const subnet = JSON.parse((await d.lxc(["query", `/1.0/networks/${net}`])).stdout).config["ipv4.address"] as string;
  const prefix = subnet.split(".").slice(0, 3).join(".") + ".";

  await d.lxc(["launch", "tiny", "v1", "--vm", "-n", net, "-c", "limits.cpu=2", "-c", "limits.memory=512MiB"]);
  await agentReady(d, "v1");

  // The tap: a tun device of kind tap on the network's bridge, named in the state.
  const state = JSON.parse((await d.lxc(["query", "/1.0/instances/v1/state"])).stdout);
  const tap = state.network?.eth0?.host_name as string;
  assert.match(tap, /^tap[0-9a-f]{8}$/, `eth0's host_name in ${JSON.stringify(state.network)}`);
  assert.deepEqual(await hostLink(tap), { kind: "tun", master: net });

  // The guest's udhcpc gets a lease from the network's dnsmasq; lxc list shows the address.
  const listed = await eventually(
    async () => /(\d+\.\d+\.\d+\.\d+) \(eth0\)/.exec((await d.lxc(["list", "v1", "--format", "csv", "-c", "4"])).stdout)?.[1],
    "an IPv4 address on eth0 in lxc list",
    60_000,
    500,
  );
  assert.ok(listed.startsWith(prefix), `${listed} is in ${subnet}`);
  const inGuest = await d.lxc(["exec", "v1", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
  assert.ok(inGuest.stdout.includes(` ${listed}/24 `), inGuest.stdout);
  // And the guest reaches the host over it.
  const gw = subnet.split("/")[0]!;
  await d.lxc(["exec", "v1", "--", "ping", "-c", "1", "-W", "5", gw]);

  // limits.cpu and limits.memory as the guest sees them.
  assert.equal((await d.lxc(["exec", "v1", "--", "nproc"])).stdout.trim(), "2");
  const memTotalKiB = Number(/^MemTotal:\s+(\d+) kB/m.exec((await d.lxc(["exec", "v1", "--", "cat", "/proc/meminfo"])).stdout)?.[1]);
  // The kernel keeps some of the 512 MiB for itself (its image, reserved pages): MemTotal is a little less.
  assert.ok(memTotalKiB > 400 * 1024 && memTotalKiB <= 512 * 1024, `MemTotal ${memTotalKiB} kB for limits.memory=512MiB`);
  const usedBy = JSON.parse((await d.lxc(["query", `/1.0/networks/${net}`])).stdout).used_by as string[];
  assert.deepEqual(usedBy, ["/1.0/instances/v1"]);

  await d.lxc(["delete", "-f", "v1"]);
  assert.equal(await hostLink(tap), undefined, `the tap ${tap} is gone`);
  await d.lxc(["network", "delete", net]);
  assert.equal(await hostLink(net), undefined, "the bridge is gone");
});

test("a VM published as an image launches another VM with its files; a copy runs on its own; its export is refused with a clear error", { timeout: 600_000 }, async (t) => {
  const d = await TestDaemon.start(t);
  const img = await tinyVmImage();
  await d.lxc(["image", "import", img.metadata, img.rootfs, "--alias", "tiny"]);
  await d.lxc(["launch", "tiny", "v1", "--vm"]);
  await eventually(async () => ((await d.lxc(["exec", "v1", "--", "true"], { allowFail: true })).code === 0 ? true : undefined), "the agent of v1", 120_000, 500);
  await d.lxc(["exec", "v1", "--", "sh", "-c", "echo published > /root/mark && sync"]);
  await d.lxc(["stop", "v1"]);
  await d.lxc(["publish", "v1", "--alias", "pub"]);
  const pub = JSON.parse((await d.lxc(["query", "/1.0/images/aliases/pub"])).stdout);
  assert.equal(pub.type, "virtual-machine");
  await d.lxc(["launch", "pub", "v2", "--vm"]);
  await eventually(async () => ((await d.lxc(["exec", "v2", "--", "true"], { allowFail: true })).code === 0 ? true : undefined), "the agent of v2", 120_000, 500);
  assert.equal((await d.lxc(["exec", "v2", "--", "cat", "/root/mark"])).stdout, "published\n");
  // A copy of the stopped VM is a VM of its own with the same disk content.
  await d.lxc(["copy", "v1", "v3"]);
  await d.lxc(["start", "v3"]);
  await eventually(async () => ((await d.lxc(["exec", "v3", "--", "true"], { allowFail: true })).code === 0 ? true : undefined), "the agent of v3", 120_000, 500);
  assert.equal((await d.lxc(["exec", "v3", "--", "cat", "/root/mark"])).stdout, "published\n");
  await d.lxc(["exec", "v3", "--", "sh", "-c", "echo mine > /root/mark && sync"]);
  await d.lxc(["stop", "-f", "v3"]);
  const exp = await d.lxc(["export", "v1", join(d.dir, "v1.tar.gz")], { allowFail: true });
  assert.notEqual(exp.code, 0);
  assert.match(exp.stderr, /Backups of virtual machines are not supported yet/);
  await d.lxc(["delete", "-f", "v1", "v2", "v3"]);
});
