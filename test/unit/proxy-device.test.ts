import test from "node:test";
import assert from "node:assert/strict";
import { validateDevices } from "../../src/instances/config/devices.js";
import { formatProxyAddress, parseProxyAddress, parseProxyDevice, portCount } from "../../src/instances/devices/proxy.js";

const web = { type: "proxy", listen: "tcp:127.0.0.1:8080", connect: "tcp:127.0.0.1:80" };

test("proxy device: defaults as LXD's (bind host, root, mode 0644)", () => {
  assert.deepEqual(parseProxyDevice("web", web), {
    device: "web",
    listen: { protocol: "tcp", host: "127.0.0.1", ports: [{ first: 8080, last: 8080 }] },
    connect: { protocol: "tcp", host: "127.0.0.1", ports: [{ first: 80, last: 80 }] },
    bind: "host",
    uid: 0,
    gid: 0,
    mode: 0o644,
    securityUid: 0,
    securityGid: 0,
    proxyProtocol: false,
  });
});

test("proxy device: every key is read", () => {
  const spec = parseProxyDevice("sock", {
    type: "proxy",
    listen: "unix:/run/app.sock",
    connect: "tcp:[::1]:9000",
    bind: "instance",
    uid: "1000",
    gid: "1001",
    mode: "0660",
    "security.uid": "33",
    "security.gid": "34",
    proxy_protocol: "true",
    nat: "false",
  });
  assert.equal(spec.bind, "instance");
  assert.deepEqual(spec.listen, { protocol: "unix", path: "/run/app.sock" });
  assert.deepEqual(spec.connect, { protocol: "tcp", host: "::1", ports: [{ first: 9000, last: 9000 }] });
  assert.deepEqual([spec.uid, spec.gid, spec.mode, spec.securityUid, spec.securityGid, spec.proxyProtocol], [1000, 1001, 0o660, 33, 34, true]);
});

test("proxy addresses: forms, port lists and ranges, canonical text", () => {
  const cases: [string, string, number][] = [
    ["tcp:0.0.0.0:80", "tcp:0.0.0.0:80", 1],
    ["udp:[::]:53", "udp:[::]:53", 1],
    ["tcp:10.0.0.1:8000-8009,8443", "tcp:10.0.0.1:8000-8009,8443", 11],
    ["tcp:[fe80::1]:1-2,5", "tcp:[fe80::1]:1-2,5", 3],
    ["unix:/run/x.sock", "unix:/run/x.sock", 1],
    ["unix:@abstract", "unix:@abstract", 1],
  ];
  for (const [text, canonical, count] of cases) {
    const a = parseProxyAddress(text, "listen");
    assert.equal(formatProxyAddress(a), canonical);
    assert.equal(portCount(a), count, text);
  }
});

test("proxy ports map one to one, or many to one", () => {
  assert.doesNotThrow(() => parseProxyDevice("r", { ...web, listen: "tcp:127.0.0.1:8000-8002", connect: "tcp:127.0.0.1:9000-9002" }));
  assert.doesNotThrow(() => parseProxyDevice("r", { ...web, listen: "tcp:127.0.0.1:8000-8002", connect: "tcp:127.0.0.1:9000" }));
  assert.doesNotThrow(() => parseProxyDevice("r", { ...web, listen: "tcp:127.0.0.1:8000,8001", connect: "unix:/run/s" }));
  assert.throws(() => parseProxyDevice("r", { ...web, listen: "tcp:127.0.0.1:8000-8002", connect: "tcp:127.0.0.1:9000-9001" }), /Device "r": "connect" has 2 ports for 3 listen ports/);
  assert.throws(() => parseProxyDevice("r", { ...web, listen: "unix:/run/s", connect: "tcp:127.0.0.1:1-2" }), /"connect" has 2 ports for 1 listen ports/);
});

test("every protocol forwards to every other, as LXD's list", () => {
  const addr = { tcp: "tcp:127.0.0.1:1", udp: "udp:127.0.0.1:1", unix: "unix:/run/s" };
  for (const l of Object.values(addr)) for (const c of Object.values(addr)) assert.doesNotThrow(() => parseProxyDevice("p", { type: "proxy", listen: l, connect: c }));
});

test("proxy faults name the device and the key", () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ type: "proxy", connect: "tcp:127.0.0.1:80" }, /Device "p": "listen" is required/],
    [{ type: "proxy", listen: "tcp:127.0.0.1:80" }, /"connect" is required/],
    [{ ...web, listen: "http://x" }, /"listen" "http:\/\/x" must look like tcp:/],
    [{ ...web, listen: "tcp:127.0.0.1:0" }, /"listen" port 0 is out of range \(1-65535\)/],
    [{ ...web, connect: "tcp:127.0.0.1:65536" }, /"connect" port 65536 is out of range/],
    [{ ...web, listen: "tcp:127.0.0.1:90-80" }, /range 90-80 ends before it starts/],
    [{ ...web, listen: "tcp:127.0.0.1:http" }, /port "http" is not a port/],
    [{ ...web, listen: "tcp:localhost:80" }, /address "localhost" is not an IP address/],
    [{ ...web, listen: "tcp:::1:80" }, /needs ADDRESS:PORT, with an IPv6 address in brackets/],
    [{ ...web, listen: "tcp:[127.0.0.1]:80" }, /is not an IP address/],
    [{ ...web, listen: "tcp:999.1.1.1:80" }, /is not an IP address/],
    [{ ...web, listen: "unix:run/x" }, /"listen" unix socket "run\/x" must be an absolute path or @name/],
    [{ ...web, listen: `unix:/${"x".repeat(107)}` }, /at most 107 bytes/],
    [{ ...web, bind: "guest" }, /"bind" "guest" must be host or instance/],
    [{ ...web, mode: "0660" }, /"mode" only applies when "listen" is a unix socket path/],
    [{ ...web, listen: "unix:@abs", uid: "5" }, /"uid" only applies/],
    [{ ...web, listen: "unix:/run/s", mode: "rw" }, /"mode" "rw" is not an octal mode/],
    [{ ...web, listen: "unix:/run/s", uid: "4294967295" }, /"uid" 4294967295 is out of range/],
    [{ ...web, "security.uid": "-1" }, /"security.uid" -1 is out of range/],
    [{ ...web, nat: "true" }, /"nat" mode .* managed network/],
    [{ ...web, connect: "udp:127.0.0.1:53", proxy_protocol: "true" }, /"proxy_protocol" needs a tcp or unix "connect"/],
  ];
  for (const [d, re] of bad) assert.throws(() => parseProxyDevice("p", d), re, JSON.stringify(d));
});

test("validateDevices: proxy keys are LXD's; unknown keys and faults are a 400 naming the device", () => {
  const ok = { ...web, "security.uid": "1", "security.gid": "1", proxy_protocol: "false", nat: "false" };
  assert.deepEqual(validateDevices({ web: ok }), { web: ok });
  const err = (devs: unknown) => {
    try {
      validateDevices(devs);
    } catch (e) {
      return e as { status: number; message: string };
    }
    assert.fail("accepted");
  };
  const unknown = err({ web: { ...web, colour: "red" } });
  assert.equal(unknown.status, 400);
  assert.match(unknown.message, /Invalid device "web": Unknown proxy device config key "colour"/);
  assert.match(err({ web: { ...web, listen: "tcp:127.0.0.1:99999" } }).message, /Invalid device "web": "listen" port 99999 is out of range/);
  assert.match(err({ web: { ...web, uid: "x", listen: "unix:/s" } }).message, /Invalid value for proxy device config key "uid"/);
});
