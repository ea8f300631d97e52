import test from "node:test";
import assert from "node:assert/strict";
import type { InstanceFull } from "../../src/api/instance.js";
import { detachFilter } from "../../src/cli/instance-console.js";
import {
  deviceOverrides,
  deviceSpec,
  isInstancePath,
  normalizePath,
  parseDeviceOverride,
  parseInstancePath,
  parseKeyValues,
  parseMode,
  parseSetArgs,
  randomName,
} from "../../src/cli/instance-args.js";
import { addresses, byteSize, dotPrefixMatch, matchListFilters, parseColumns, parseListFilters } from "../../src/cli/instance-columns.js";
import { parseInstancePut } from "../../src/cli/instance-config.js";
import { execRequest } from "../../src/cli/instance-exec.js";
import { execMode, terminalSize } from "../../src/cli/exec-stream.js";
import { fileHeaders, pullTarget, pushTarget } from "../../src/cli/file-transfer.js";
import { splitTransfer } from "../../src/cli/instance-file.js";
import { renderCsv } from "../../src/cli/output.js";

function instance(over: Partial<InstanceFull> = {}): InstanceFull {
  return {
    name: "c1",
    type: "container",
    status: "Running",
    status_code: 103,
    created_at: "2024-01-31T14:05:00Z",
    last_used_at: "2024-02-01T09:00:00Z",
    location: "none",
    project: "default",
    architecture: "x86_64",
    config: { "user.role": "db" },
    devices: {},
    ephemeral: false,
    profiles: ["default"],
    stateful: false,
    description: "",
    expanded_config: { "user.role": "db", "limits.memory": "64MiB", "image.os": "busybox" },
    expanded_devices: { root: { type: "disk", path: "/", pool: "default" } },
    state: {
      status: "Running",
      status_code: 103,
      pid: 4242,
      processes: 3,
      cpu: { usage: 2_500_000_000 },
      memory: { usage: 1536 * 1024, usage_peak: 0, swap_usage: 0, swap_usage_peak: 0 },
      disk: {},
      network: {
        lo: {
          addresses: [{ family: "inet", address: "127.0.0.1", netmask: "8", scope: "local" }],
          counters: {} as never,
          hwaddr: "",
          host_name: "",
          mtu: 65536,
          state: "up",
          type: "loopback",
        },
        eth0: {
          addresses: [
            { family: "inet", address: "10.0.3.5", netmask: "24", scope: "global" },
            { family: "inet6", address: "fe80::1", netmask: "64", scope: "link" },
            { family: "inet6", address: "fd42::5", netmask: "64", scope: "global" },
          ],
          counters: {} as never,
          hwaddr: "00:16:3e:00:00:01",
          host_name: "veth1",
          mtu: 1500,
          state: "up",
          type: "broadcast",
        },
      },
    },
    snapshots: [],
    backups: [],
    ...over,
  };
}

test("NAME/PATH splits at the first slash; the path is normalised and absolute", () => {
  assert.deepEqual(parseInstancePath("c1/etc/hosts"), { instance: "c1", path: "/etc/hosts" });
  assert.deepEqual(parseInstancePath("c1/"), { instance: "c1", path: "/" });
  assert.deepEqual(parseInstancePath("web-2//tmp/./a/../b"), { instance: "web-2", path: "/tmp/b" });
  assert.throws(() => parseInstancePath("c1"), /Invalid instance path "c1": expected NAME\/PATH/);
  assert.throws(() => parseInstancePath("/etc/hosts"), /expected NAME\/PATH/);
  assert.throws(() => parseInstancePath("9bad/x"), /Invalid instance name "9bad"/);
  assert.equal(isInstancePath("c1/etc"), true);
  assert.equal(isInstancePath("./local"), false);
  assert.equal(normalizePath("/../.."), "/");
});

test("k=v lists keep '=' in values and name a bad word; config set takes k=v… or k v", () => {
  assert.deepEqual(parseKeyValues(["a=1", "b=x=y", "c="]), { a: "1", b: "x=y", c: "" });
  assert.throws(() => parseKeyValues(["novalue"]), /Invalid setting "novalue": expected KEY=VALUE/);
  assert.throws(() => parseKeyValues(["=1"]), /Invalid setting "=1"/);
  assert.deepEqual(parseSetArgs(["limits.memory", "64MiB"]), { "limits.memory": "64MiB" });
  assert.deepEqual(parseSetArgs(["user.a=1", "user.b=2"]), { "user.a": "1", "user.b": "2" });
  assert.throws(() => parseSetArgs([]), /Nothing to set/);
  assert.throws(() => parseSetArgs(["user.a=1", "user.b"]), /Invalid setting "user.b"/);
});

test("device overrides and device specs", () => {
  assert.deepEqual(parseDeviceOverride("root,size=10GiB,pool=fast"), { device: "root", settings: { size: "10GiB", pool: "fast" } });
  assert.deepEqual(deviceOverrides(["root,size=1GiB", "eth0,mtu=1400", "root,size=2GiB"]), {
    root: { size: "2GiB" },
    eth0: { mtu: "1400" },
  });
  assert.throws(() => parseDeviceOverride("root"), /no key=value after the device name/);
  assert.throws(() => parseDeviceOverride("size=1,root"), /expected DEVICE,key=value/);
  assert.deepEqual(deviceSpec("disk", ["source=/srv", "path=/mnt/x"]), { source: "/srv", path: "/mnt/x", type: "disk" });
  assert.throws(() => deviceSpec("Disk!", []), /Invalid device type "Disk!"/);
  assert.throws(() => deviceSpec("disk", ["type=nic"]), /Device type given twice/);
  assert.throws(() => deviceSpec("disk", ["source"]), /Invalid device setting "source"/);
});

test("modes are octal; random names are adjective-noun and valid instance names", () => {
  assert.equal(parseMode("0644"), 0o644);
  assert.equal(parseMode("755"), 0o755);
  assert.throws(() => parseMode("999"), /Invalid mode "999"/);
  for (let i = 0; i < 50; i++) assert.match(randomName(), /^[a-z]+-[a-z]+$/);
  assert.equal(randomName(() => 0), "able-badger");
  assert.equal(randomName(() => 0.9999), "zesty-wren");
});

test("columns: lxc's shorthand letters, config key columns, unknown letters named", () => {
  const i = instance();
  const row = (spec: string) => parseColumns(spec).map((c) => c.value(i));
  const headers = (spec: string) => parseColumns(spec).map((c) => c.header);
  assert.deepEqual(headers("ns46tS"), ["NAME", "STATE", "IPV4", "IPV6", "TYPE", "SNAPSHOTS"]);
  assert.deepEqual(row("ns46tS"), ["c1", "RUNNING", "10.0.3.5 (eth0)", "fd42::5 (eth0)", "CONTAINER", "0"]);
  assert.deepEqual(row("pmu"), ["4242", "1.50MiB", "2s"]);
  assert.deepEqual(headers("clpmu"), ["CREATED AT", "LAST USED AT", "PID", "MEMORY USAGE", "CPU USAGE"]);
  assert.deepEqual(row("c"), ["2024/01/31 14:05 UTC"]);
  assert.deepEqual(headers("n,user.role:ROLE,config:limits.memory"), ["NAME", "ROLE", "LIMITS.MEMORY"]);
  assert.deepEqual(row("n,user.role:ROLE,config:limits.memory"), ["c1", "db", "64MiB"]);
  assert.throws(() => parseColumns("nsX"), /Unknown column shorthand "X" in "nsX"/);
  assert.throws(() => parseColumns("n,,s"), /an empty column/);
  // A stopped instance has no pid, memory or CPU cells, and ephemeral shows in TYPE.
  const stopped = instance({ ephemeral: true, state: { ...i.state!, status: "Stopped", pid: 0 } });
  assert.deepEqual(parseColumns("spmut").map((c) => c.value(stopped)), ["STOPPED", "", "", "", "CONTAINER (EPHEMERAL)"]);
  assert.equal(renderCsv([row("n4")]), "c1,10.0.3.5 (eth0)\n");
});

test("addresses leave out loopback and link-local, one per line, sorted as lxc", () => {
  const net = instance().state!.network!;
  net.eth1 = { ...net.eth0!, addresses: [{ family: "inet", address: "192.168.1.9", netmask: "24", scope: "global" }] };
  assert.equal(addresses(net, "inet"), "192.168.1.9 (eth1)\n10.0.3.5 (eth0)");
  assert.equal(addresses(null, "inet"), "");
  assert.equal(byteSize(512), "512B");
  assert.equal(byteSize(3 * 1024 ** 3), "3.00GiB");
});

test("list filters: names by anchored regexp or prefix, key=value on config, field shorthands", () => {
  const c1 = instance();
  const web = instance({ name: "web-12", expanded_config: { "user.role": "frontend" }, state: { ...c1.state!, status: "Stopped" } });
  const pick = (...words: string[]) => [c1, web].filter((i) => matchListFilters(i, parseListFilters(words))).map((i) => i.name);
  assert.deepEqual(pick(), ["c1", "web-12"]);
  assert.deepEqual(pick("web"), ["web-12"], "a prefix");
  assert.deepEqual(pick("w.*2"), ["web-12"], "an anchored regexp");
  assert.deepEqual(pick("eb"), [], "not a substring: lxc anchors names");
  assert.deepEqual(pick("user.role=db"), ["c1"]);
  assert.deepEqual(pick("user.role=front.*"), ["web-12"], "values are regexps");
  assert.deepEqual(pick("u.ro=db"), ["c1"], "dotted keys abbreviate per part");
  assert.deepEqual(pick("status=running"), ["c1"]);
  assert.deepEqual(pick("state=STOPPED"), ["web-12"]);
  assert.deepEqual(pick("type=container", "user.role=db"), ["c1"], "filters AND");
  assert.deepEqual(pick("limits.memory=64MiB"), ["c1"]);
  assert.deepEqual(pick("user.role=nope"), []);
  assert.equal(dotPrefixMatch("lim.mem", "limits.memory"), true);
  assert.equal(dotPrefixMatch("limits", "limits.memory"), false);
  assert.throws(() => parseListFilters(["=x"]), /Invalid filter "=x"/);
});

test("exec requests: env, cwd, user, group; TERM passed on a terminal only", () => {
  assert.deepEqual(execRequest(["sh"], { env: ["FOO=bar"], cwd: "/tmp", user: "1000", group: "100" }, false, { TERM: "xterm-256color" }), {
    command: ["sh"],
    environment: { FOO: "bar" },
    cwd: "/tmp",
    user: 1000,
    group: 100,
  });
  assert.equal(execRequest(["sh"], { env: [] }, true, { TERM: "screen" }).environment?.TERM, "screen");
  assert.equal(execRequest(["sh"], { env: ["TERM=dumb"] }, true, { TERM: "screen" }).environment?.TERM, "dumb");
  assert.throws(() => execRequest([], { env: [] }, false), /No command given/);
  assert.throws(() => execRequest(["sh"], { env: ["FOO"] }, false), /Invalid environment variable "FOO"/);
  assert.throws(() => execRequest(["sh"], { env: [], cwd: "tmp" }, false), /must be absolute/);
  assert.throws(() => execRequest(["sh"], { env: [], user: "root" }, false), /Invalid --user "root"/);
});

test("exec mode follows lxc: interactive on two terminals, -t and -T force it", () => {
  const tty = { stdin: { isTTY: true }, stdout: { isTTY: true } } as never;
  const pipe = { stdin: { isTTY: false }, stdout: { isTTY: true } } as never;
  assert.equal(execMode({}, tty).interactive, true);
  assert.equal(execMode({}, pipe).interactive, false);
  assert.equal(execMode({ forceInteractive: true }, pipe).interactive, true);
  assert.equal(execMode({ forceNonInteractive: true }, tty).interactive, false);
  assert.deepEqual(execMode({ noStdin: true }, tty), { interactive: false, noStdin: true });
  assert.deepEqual(terminalSize({ columns: 0, rows: 0 } as never), { width: 80, height: 24 });
  assert.deepEqual(terminalSize({ columns: 120, rows: 40 } as never), { width: 120, height: 40 });
});

test("file transfers: destinations, headers", () => {
  const to = parseInstancePath("c1/root/");
  assert.deepEqual(pushTarget("/home/me/notes.txt", to, true), { instance: "c1", path: "/root/notes.txt" });
  assert.deepEqual(pushTarget("dir/", to, true), { instance: "c1", path: "/root/dir" });
  assert.deepEqual(pushTarget("a.txt", parseInstancePath("c1/etc/b.txt"), false), { instance: "c1", path: "/etc/b.txt" });
  assert.equal(pullTarget(parseInstancePath("c1/etc/hosts"), "/tmp/out", true), "/tmp/out/hosts");
  assert.equal(pullTarget(parseInstancePath("c1/etc/hosts"), "/tmp/h", false), "/tmp/h");
  assert.deepEqual(fileHeaders("file", { uid: 0, gid: 5, mode: 0o100640 }), {
    "X-LXD-type": "file",
    "X-LXD-write": "overwrite",
    "content-type": "application/octet-stream",
    "X-LXD-uid": "0",
    "X-LXD-gid": "5",
    "X-LXD-mode": "0640",
  });
  assert.deepEqual(splitTransfer(["a", "b", "c1/tmp/"], "push"), { sources: ["a", "b"], dest: "c1/tmp/" });
  assert.throws(() => splitTransfer(["a"], "push"), /needs at least a source and a destination/);
});

test("config edit YAML: values become strings, read-only fields are refused by name", async () => {
  assert.deepEqual(await parseInstancePut("config:\n  limits.cpu: 2\n  user.x: null\ndevices:\n  d:\n    type: disk\n    readonly: true\n"), {
    config: { "limits.cpu": "2", "user.x": "" },
    devices: { d: { type: "disk", readonly: "true" } },
  });
  await assert.rejects(parseInstancePut("name: other\n"), /"name" cannot be edited/);
  await assert.rejects(parseInstancePut("config: [\n"), /Invalid YAML/);
  assert.deepEqual(await parseInstancePut("# only comments\n"), {});
});

test("console: ctrl+a q detaches, ctrl+a ctrl+a sends one ctrl+a", () => {
  let detached = 0;
  const f = detachFilter(() => detached++);
  assert.deepEqual(f(Buffer.from("ls\r")), Buffer.from("ls\r"));
  assert.deepEqual(f(Buffer.from([0x01, 0x01, 0x41])), Buffer.from([0x01, 0x41]));
  assert.equal(f(Buffer.from([0x01]))?.length, 0);
  assert.equal(f(Buffer.from("q")), null);
  assert.equal(detached, 1);
});
