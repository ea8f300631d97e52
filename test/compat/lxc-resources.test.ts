import test from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Resources } from "../../src/api/resources.js";
import { shapeProblems } from "../helpers/api-shape.js";
import { TestDaemon } from "../helpers/daemon.js";

// GET /1.0/resources on a real lodged, against the reference shape and this host's own numbers,
// and the `lxc` 5.0.2 commands that need the resources API extensions.

const onlineCpus = async () => {
  let n = 0;
  for (const range of (await readFile("/sys/devices/system/cpu/online", "utf8")).trim().split(",")) {
    const [lo, hi] = range.split("-").map(Number);
    n += (hi ?? lo!) - lo! + 1;
  }
  return n;
};

test("GET /1.0/resources: the reference shape, the host's CPUs and memory, and the extensions advertised", async (t) => {
  const d = await TestDaemon.start(t);
  const r = await d.client.get<Resources>("/1.0/resources");
  assert.deepEqual(await shapeProblems("Resources", r), []);

  assert.equal(r.cpu.total, await onlineCpus());
  assert.equal(r.cpu.sockets.flatMap((s) => s.cores.flatMap((c) => c.threads)).length, r.cpu.total);
  const memTotal = /^MemTotal:\s+(\d+) kB$/m.exec(await readFile("/proc/meminfo", "utf8"))![1]!;
  assert.equal(r.memory.total, Number(memTotal) * 1024);
  assert.ok(r.memory.used > 0 && r.memory.used < r.memory.total);
  // Every block device and interface with a device of its own is listed (loop, zram, lo,
  // bridges and veths have none).
  const withDevice = async (dir: string) => (await readdir(dir)).filter((n) => existsSync(join(dir, n, "device"))).sort();
  assert.deepEqual(r.storage.disks.map((x) => x.id).sort(), await withDevice("/sys/class/block"));
  assert.equal(r.storage.total, r.storage.disks.reduce((n, x) => n + 1 + x.partitions.length, 0));
  assert.deepEqual(r.network.cards.flatMap((c) => (c.ports ?? []).map((p) => p.id)).sort(), await withDevice("/sys/class/net"));

  const server = await d.client.get<{ api_extensions: string[] }>("/1.0");
  for (const ext of ["resources", "resources_v2", "resources_system", "resources_usb_pci"]) assert.ok(server.api_extensions.includes(ext), ext);
});

test("lxc info --resources and lxc storage info work against lodged", async (t) => {
  const d = await TestDaemon.start(t);
  const info = await d.lxc(["info", "--resources"]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /^CPUs? \(/m);
  assert.match(info.stdout, /^Memory:\n/m);
  assert.match(info.stdout, /^ {2}Total: /m);

  const storage = await d.lxc(["storage", "info", "default"]);
  assert.equal(storage.code, 0, storage.stderr);
  assert.match(storage.stdout, /total space: /);
  assert.match(storage.stdout, /space used: /);
});
