import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { readdir, readFile, stat } from "node:fs/promises";
import { get } from "node:http";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// proxy devices through the real `lxc` client: lodge-proxy forwarders between the host and a
// busybox container (its own loopback is up without a NIC).

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  return d;
}

/** A container with busybox httpd answering `body` on 127.0.0.1:PORT inside, for each port given. */
async function launchWithWeb(d: TestDaemon, name: string, sites: Record<number, string> = { 8080: "hello from inside" }) {
  await d.lxc(["launch", "bb", name]);
  await startWeb(d, name, sites);
}

async function startWeb(d: TestDaemon, name: string, sites: Record<number, string>) {
  const script = Object.entries(sites)
    .map(([port, body]) => `mkdir -p /www/${port} && echo '${body}' > /www/${port}/index.html && httpd -p 127.0.0.1:${port} -h /www/${port}`)
    .join(" && ");
  await d.lxc(["exec", name, "--", "sh", "-c", script]);
  // busybox httpd goes to the background before it binds its port: wait until each listens
  // (state 0A in /proc/net/tcp, the port in hex).
  const listening = Object.keys(sites)
    .map((port) => `grep -qi ':${Number(port).toString(16).padStart(4, "0")} [0-9A-F:]* 0A ' /proc/net/tcp`)
    .join(" && ");
  const wait = await d.lxc(["exec", name, "--", "sh", "-c", `i=0; until ${listening}; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.05; done`], { allowFail: true });
  assert.equal(wait.code, 0, `httpd in ${name} listens on ${Object.keys(sites).join(", ")}`);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function freePorts(n: number): Promise<number> {
  // n consecutive free ports: try a few random bases.
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const servers: Server[] = [];
    try {
      for (let p = base; p < base + n; p++) {
        const s = createServer();
        await new Promise<void>((ok, fail) => s.once("error", fail).listen(p, "127.0.0.1", ok));
        servers.push(s);
      }
      return base;
    } catch {
      /* taken: try another base */
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error("no free port range");
}

function httpGet(target: { port: number; host?: string } | { socketPath: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: "127.0.0.1", path: "/", agent: false, timeout: 5000, ...target }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

/** Sends `data`, half-closes, and collects everything until the far end closes. */
function exchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    s.setTimeout(10_000, () => s.destroy(new Error("timed out")));
    s.on("connect", () => s.end(data));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("end", () => resolve(Buffer.concat(chunks)));
    s.on("error", reject);
  });
}

function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve(undefined);
    });
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code));
  });
}

/** This daemon's live forwarders (zombies left for the host's init to reap do not count). */
async function forwarders(d: TestDaemon): Promise<{ pid: number; args: string[] }[]> {
  const out: { pid: number; args: string[] }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const [cmdline, st] = await Promise.all([
      readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => ""),
      readFile(`/proc/${entry}/stat`, "utf8").catch(() => ""),
    ]);
    const args = cmdline.replace(/\0$/, "").split("\0");
    const state = st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3);
    if (args[0]?.endsWith("lodge-proxy") && cmdline.includes(d.dir) && state !== "Z" && state !== "") out.push({ pid: Number(entry), args });
  }
  return out;
}

/** The main forwarder process of a device (its helper inside is its child, with the same command line). */
async function forwarderOf(d: TestDaemon, device: string): Promise<number[]> {
  const all = await forwarders(d);
  const ppid = async (pid: number) => {
    const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    return Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
  };
  const mine = all.filter((f) => f.args.some((a) => a.endsWith(`/${device}`)));
  const pids = new Set(mine.map((f) => f.pid));
  const main: number[] = [];
  for (const f of mine) if (!pids.has(await ppid(f.pid))) main.push(f.pid);
  return main;
}

async function initPid(d: TestDaemon, name: string): Promise<number> {
  return JSON.parse((await d.lxc(["query", `/1.0/instances/${name}/state`])).stdout).pid as number;
}

async function devices(d: TestDaemon, name: string): Promise<Record<string, Record<string, string>>> {
  return JSON.parse((await d.lxc(["query", `/1.0/instances/${name}`])).stdout).devices;
}

test("a host port reaches a server inside: hot-plugged, half-close kept, back after a restart, closed when removed", async (t) => {
  const d = await daemonWithImage(t);
  await launchWithWeb(d, "c1");
  const port = await freePort();
  await d.lxc(["config", "device", "add", "c1", "web", "proxy", `listen=tcp:127.0.0.1:${port}`, "connect=tcp:127.0.0.1:8080"]);
  assert.equal(await httpGet({ port }), "hello from inside\n");
  assert.equal((await forwarderOf(d, "web")).length, 1, "one forwarder for the device");

  // An echo server inside: the client's half-close reaches it, its whole answer comes back.
  await d.lxc(["exec", "c1", "--", "sh", "-c", "nc -ll -p 8081 -e cat </dev/null >/dev/null 2>&1 &"]);
  const echoPort = await freePort();
  await d.lxc(["config", "device", "add", "c1", "echo", "proxy", `listen=tcp:127.0.0.1:${echoPort}`, "connect=tcp:127.0.0.1:8081"]);
  const data = Buffer.alloc(300_000, "lodge");
  let echoed: Buffer = Buffer.alloc(0);
  for (let i = 0; i < 20 && echoed.length === 0; i++) {
    echoed = await exchange(echoPort, data); // nc may not listen yet at the first try
    if (echoed.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(echoed.length, data.length);
  assert.ok(echoed.equals(data), "the echo is byte for byte what was sent");

  const before = await forwarderOf(d, "web");
  await d.lxc(["restart", "c1"]);
  const after = await forwarderOf(d, "web");
  assert.equal(after.length, 1);
  assert.notDeepEqual(after, before, "a new forwarder for the new init");
  const args = (await forwarders(d)).find((f) => f.pid === after[0])!.args;
  assert.equal(args[args.indexOf("--pid") + 1], String(await initPid(d, "c1")), "it serves the new init");
  await startWeb(d, "c1", { 8080: "hello again" });
  assert.equal(await httpGet({ port }), "hello again\n");

  await d.lxc(["config", "device", "remove", "c1", "web"]);
  assert.equal(await connectError(port), "ECONNREFUSED", "the host port is closed once the device is gone");
  assert.deepEqual(await forwarderOf(d, "web"), []);
  assert.equal((await forwarderOf(d, "echo")).length, 1, "the other device's forwarder stays");

  await d.lxc(["delete", "--force", "c1"]);
  assert.deepEqual(await forwarders(d), [], "no forwarder left after delete");
  assert.equal(await connectError(echoPort), "ECONNREFUSED");
});

test("a unix socket on the host with owner and mode; udp per client; a port range one to one", async (t) => {
  const d = await daemonWithImage(t);
  await launchWithWeb(d, "c2", { 8081: "site one", 8082: "site two", 8083: "site three" });
  const sock = join(d.dir, "web.sock");
  await d.lxc(["config", "device", "add", "c2", "sock", "proxy", `listen=unix:${sock}`, "connect=tcp:127.0.0.1:8082", "uid=1234", "gid=2345", "mode=0600"]);
  const st = await stat(sock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.deepEqual([st.uid, st.gid], [1234, 2345]);
  assert.equal(await httpGet({ socketPath: sock }), "site two\n");

  // UDP: an echo server in the container's network namespace; each client gets its own answers.
  const pid = await initPid(d, "c2");
  const code = `const s=require("dgram").createSocket("udp4");s.on("message",(m,r)=>s.send("echo:"+m,r.port,r.address));s.bind(5353,"127.0.0.1",()=>console.log("ready"));`;
  const server = spawn("nsenter", ["-t", String(pid), "-n", process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => server.kill("SIGKILL"));
  await new Promise<void>((r) => server.stdout!.once("data", () => r()));
  const udpPort = await freePort();
  await d.lxc(["config", "device", "add", "c2", "dns", "proxy", `listen=udp:127.0.0.1:${udpPort}`, "connect=udp:127.0.0.1:5353"]);
  const ask = async (msg: string) => {
    const c = createSocket("udp4");
    try {
      const answer = new Promise<string>((resolve, reject) => {
        c.on("message", (m) => resolve(m.toString()));
        setTimeout(() => reject(new Error("no udp answer")), 5000);
      });
      c.send(msg, udpPort, "127.0.0.1");
      return await answer;
    } finally {
      c.close();
    }
  };
  assert.deepEqual(await Promise.all([ask("a"), ask("b"), ask("c")]), ["echo:a", "echo:b", "echo:c"]);

  const base = await freePorts(3);
  await d.lxc(["config", "device", "add", "c2", "sites", "proxy", `listen=tcp:127.0.0.1:${base}-${base + 2}`, "connect=tcp:127.0.0.1:8081-8083"]);
  assert.deepEqual(await Promise.all([0, 1, 2].map((i) => httpGet({ port: base + i }))), ["site one\n", "site two\n", "site three\n"]);

  await d.lxc(["delete", "--force", "c2"]);
  assert.deepEqual(await forwarders(d), []);
  await assert.rejects(stat(sock), /ENOENT/, "the socket file is removed");
});

test("bind=instance: sockets inside reach the host; a unix socket inside has its owner and mode; PROXY header", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c3"]);
  // Answers once a line (or the client's half-close) has come, whatever the segments were.
  const received: Buffer[] = [];
  const host = createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    const reply = () => {
      if (s.writableEnded) return;
      const all = Buffer.concat(chunks);
      received.push(all);
      s.end(`host got ${all.toString()}`);
    };
    s.on("data", (c: Buffer) => {
      chunks.push(c);
      if (c.toString().endsWith("\n")) reply();
    });
    s.on("end", reply);
  });
  await new Promise<void>((r) => host.listen(0, "127.0.0.1", r));
  t.after(() => host.close());
  const hostPort = (host.address() as AddressInfo).port;

  await d.lxc(["config", "device", "add", "c3", "out", "proxy", "bind=instance", "listen=tcp:127.0.0.1:9000", `connect=tcp:127.0.0.1:${hostPort}`]);
  assert.equal((await d.lxc(["exec", "c3", "--", "sh", "-c", "echo hi | nc 127.0.0.1 9000"])).stdout, "host got hi\n");

  await d.lxc(["config", "device", "add", "c3", "app", "proxy", "bind=instance", "listen=unix:/run/app.sock", `connect=tcp:127.0.0.1:${hostPort}`, "uid=1000", "gid=1001", "mode=0660"]);
  assert.equal((await d.lxc(["exec", "c3", "--", "stat", "-c", "%u %g %a %F", "/run/app.sock"])).stdout, "1000 1001 660 socket\n");
  // The host connects to that socket through the container's own filesystem.
  const viaUnix = await freePort();
  await d.lxc(["config", "device", "add", "c3", "in", "proxy", `listen=tcp:127.0.0.1:${viaUnix}`, "connect=unix:/run/app.sock"]);
  assert.equal((await exchange(viaUnix, Buffer.from("through two forwarders"))).toString(), "host got through two forwarders");

  await d.lxc(["config", "device", "add", "c3", "pp", "proxy", "bind=instance", "listen=tcp:127.0.0.1:9001", `connect=tcp:127.0.0.1:${hostPort}`, "proxy_protocol=true"]);
  received.length = 0;
  await d.lxc(["exec", "c3", "--", "sh", "-c", "echo proxied | nc 127.0.0.1 9001"]);
  const h = received[0]!;
  assert.ok(h.subarray(0, 12).equals(Buffer.from("0d0a0d0a000d0a515549540a", "hex")), "PROXY v2 signature");
  assert.equal(h[12], 0x21, "version 2, PROXY");
  assert.equal(h[13], 0x11, "TCP over IPv4");
  assert.deepEqual([...h.subarray(16, 24)], [127, 0, 0, 1, 127, 0, 0, 1]);
  assert.equal(h.readUInt16BE(26), 9001, "the destination is the port listened on inside");
  assert.equal(h.subarray(28).toString(), "proxied\n");

  await d.lxc(["config", "device", "remove", "c3", "app"]);
  const ls = await d.lxc(["exec", "c3", "--", "ls", "/run"]);
  assert.doesNotMatch(ls.stdout, /app\.sock/, "the socket file inside is removed with the device");
  await d.lxc(["delete", "--force", "c3"]);
  assert.deepEqual(await forwarders(d), []);
});

test("lodged killed with -9: the forwarder keeps working, is found again, and stops with the container", async (t) => {
  const d = await daemonWithImage(t);
  await launchWithWeb(d, "c4");
  const port = await freePort();
  await d.lxc(["config", "device", "add", "c4", "web", "proxy", `listen=tcp:127.0.0.1:${port}`, "connect=tcp:127.0.0.1:8080"]);
  const [pid] = await forwarderOf(d, "web");
  assert.ok(pid);

  await d.kill9();
  assert.equal(await httpGet({ port }), "hello from inside\n", "works with no lodged at all");
  await d.launch();
  assert.equal(await httpGet({ port }), "hello from inside\n");
  assert.deepEqual(await forwarderOf(d, "web"), [pid], "the same forwarder, kept");
  // Another device hot-plugged after the restart: the running forwarder is recognised and left alone.
  const port2 = await freePort();
  await d.lxc(["config", "device", "add", "c4", "web2", "proxy", `listen=tcp:[::1]:${port2}`, "connect=tcp:127.0.0.1:8080"]);
  assert.deepEqual(await forwarderOf(d, "web"), [pid]);
  assert.equal(await httpGet({ host: "::1", port: port2 }), "hello from inside\n", "an IPv6 listener");

  await d.lxc(["stop", "c4"]);
  assert.deepEqual(await forwarderOf(d, "web"), [], "stopped with the container");
  assert.equal(await connectError(port), "ECONNREFUSED");
  await d.lxc(["start", "c4"]);
  assert.equal((await forwarderOf(d, "web")).length, 1, "started again with it");
  await d.lxc(["delete", "--force", "c4"]);
  assert.deepEqual(await forwarders(d), []);
});

test("a privileged container: the forwarder enters it without a user namespace", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "p1", "-c", "security.privileged=true"]);
  await startWeb(d, "p1", { 8080: "privileged" });
  const port = await freePort();
  await d.lxc(["config", "device", "add", "p1", "web", "proxy", `listen=tcp:127.0.0.1:${port}`, "connect=tcp:127.0.0.1:8080", "security.uid=65534", "security.gid=65534"]);
  assert.equal(await httpGet({ port }), "privileged\n");
  await d.lxc(["delete", "--force", "p1"]);
  assert.deepEqual(await forwarders(d), []);
});

test("bad proxy devices are refused with a clear 400 and change nothing; a taken port fails the start cleanly", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c5"]);
  const before = await devices(d, "c5");
  const cases: [string[], RegExp][] = [
    [["listen=tcp:nowhere:80", "connect=tcp:127.0.0.1:80"], /Invalid device "bad": "listen" address "nowhere" is not an IP address/],
    [["listen=tcp:127.0.0.1:70000", "connect=tcp:127.0.0.1:80"], /Invalid device "bad": "listen" port 70000 is out of range \(1-65535\)/],
    [["listen=tcp:127.0.0.1:8000", "connect=tcp:127.0.0.1:80", "colour=red"], /Invalid device "bad": Unknown proxy device config key "colour"/],
    [["listen=tcp:127.0.0.1:8000-8002", "connect=tcp:127.0.0.1:80-81"], /"connect" has 2 ports for 3 listen ports/],
    [["listen=tcp:127.0.0.1:8000", "connect=tcp:127.0.0.1:80", "nat=true"], /"nat" mode .*managed network/],
    [["listen=tcp:127.0.0.1:8000", "connect=tcp:127.0.0.1:80", "bind=elsewhere"], /"bind" "elsewhere" must be host or instance/],
  ];
  for (const [keys, re] of cases) {
    const r = await d.lxc(["config", "device", "add", "c5", "bad", "proxy", ...keys], { allowFail: true });
    assert.notEqual(r.code, 0, keys.join(" "));
    assert.match(r.stderr, re, keys.join(" "));
  }
  const raw = await d.client.raw("PATCH", "/1.0/instances/c5", { devices: { bad: { type: "proxy", listen: "tcp:127.0.0.1:0", connect: "tcp:127.0.0.1:80" } } });
  assert.equal(raw.status, 400);
  assert.deepEqual(await devices(d, "c5"), before, "nothing stored");
  assert.deepEqual(await forwarders(d), [], "nothing started");

  // A port already taken on the host: the start fails naming the device, and nothing runs.
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
  t.after(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  const hot = await d.lxc(["config", "device", "add", "c5", "web", "proxy", `listen=tcp:127.0.0.1:${port}`, "connect=tcp:127.0.0.1:80"], { allowFail: true });
  assert.notEqual(hot.code, 0, "hot-plug onto a taken port fails");
  assert.match(hot.stderr, /proxy device "web": cannot listen on .*Address already in use/);
  assert.deepEqual(await devices(d, "c5"), before, "and the device is not stored");
  assert.deepEqual(await forwarders(d), []);
  await d.lxc(["stop", "--force", "c5"]);
  await d.lxc(["config", "device", "add", "c5", "web", "proxy", `listen=tcp:127.0.0.1:${port}`, "connect=tcp:127.0.0.1:80"]);
  const start = await d.lxc(["start", "c5"], { allowFail: true });
  assert.notEqual(start.code, 0);
  assert.match(start.stderr, new RegExp(`proxy device "web": cannot listen on tcp:127.0.0.1:${port} \\(host\\): bind: Address already in use`));
  assert.equal((await d.lxc(["list", "-f", "csv", "-c", "s", "c5"])).stdout.trim(), "STOPPED");
  assert.deepEqual(await forwarders(d), []);
  await d.lxc(["delete", "--force", "c5"]);
});
