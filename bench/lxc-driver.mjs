#!/usr/bin/env node
// The liblxc container driver's hot paths, on a busybox container without a NIC, unprivileged:
// create, start until exec-able (start + the first `true`), exec `true`, clean stop, force
// stop, and delete of a running container. Prints the median and p90 of N runs, in ms.
// Not a test: numbers depend on the machine's load. Needs root and liblxc.
//
//   node --import tsx bench/lxc-driver.mjs [N]        (N defaults to 10)
//
// A clean stop of busybox init takes 2 s by itself (it sleeps 1 s after SIGTERM and 1 s
// after SIGKILL before halting); a real distribution's init decides its own time.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBusyboxRootfs } from "../src/images/builder/busybox.ts";
import { LxcDriver } from "../src/instances/drivers/lxc/driver.ts";
import { emptyRunConfig } from "../src/instances/runconfig.ts";
import { allocateIdmap, readHostPool } from "../src/sys/idmap.ts";

const runs = Number(process.argv[2] ?? 10);
if (!Number.isInteger(runs) || runs < 1) {
  console.error("usage: node --import tsx bench/lxc-driver.mjs [runs]");
  process.exit(2);
}

const base = mkdtempSync(join(tmpdir(), "lodge-bench-lxc-"));
chmodSync(base, 0o711);
const driver = new LxcDriver({ lxcpath: join(base, "lxc") });
const image = join(base, "image");
const times = { create: [], "start→exec-able": [], "exec true": [], "stop (clean)": [], "stop (force)": [], "delete (running)": [] };
const names = [];

async function timed(key, fn) {
  const t = performance.now();
  const r = await fn();
  times[key].push(performance.now() - t);
  return r;
}

async function execTrue(name) {
  const p = await driver.exec(name, { command: ["true"], env: { PATH: "/bin" } });
  p.stdin.end();
  p.stdout.resume();
  p.stderr?.resume();
  const { code } = await p.exited;
  if (code !== 0) throw new Error(`exec true in ${name}: exit ${code}`);
}

try {
  await buildBusyboxRootfs(image, { hostname: "bench" });
  const idmap = allocateIdmap(await readHostPool(), { isolated: false }).entries;
  for (let i = 0; i < runs; i++) {
    const name = `bench-${process.pid}-${i}`;
    names.push(name);
    const rootfs = join(base, `rootfs-${i}`);
    execFileSync("cp", ["-a", "--reflink=auto", image, rootfs]);
    const spec = { name, rootfs, privileged: false, idmap, run: emptyRunConfig() };
    await timed("create", () => driver.create(spec));
    await timed("start→exec-able", async () => {
      await driver.start(spec);
      await execTrue(name);
    });
    for (let j = 0; j < 5; j++) await timed("exec true", () => execTrue(name));
    await timed("stop (clean)", () => driver.stop(name, { timeoutMs: 30_000 }));
    await driver.start(spec);
    await timed("stop (force)", () => driver.stop(name, { force: true }));
    await driver.start(spec);
    await timed("delete (running)", () => driver.delete(name, { force: true }));
  }
  const q = (s, p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  console.log(`liblxc driver, ${runs} runs (busybox, unprivileged, no NIC)`);
  console.log("operation            median     p90");
  for (const [k, v] of Object.entries(times)) {
    const s = [...v].sort((a, b) => a - b);
    console.log(`${k.padEnd(20)} ${q(s, 0.5).toFixed(1).padStart(7)} ${q(s, 0.9).toFixed(1).padStart(7)}`);
  }
} finally {
  for (const n of names) await driver.delete(n, { force: true }).catch(() => undefined);
  rmSync(base, { recursive: true, force: true });
}
