/**
 * The QEMU driver's host-side pieces against the real tools: the cloud-init seed read back with
 * isoinfo, the KVM probe, UEFI boots through OVMF (plain and secure boot, each with its own
 * NVRAM), and the root disk's format kept across starts. One VM at a time, removed in t.after.
 */
import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { QemuDriver } from "../../src/instances/drivers/qemu/driver.js";
import { detectAccelerator, probeBoot } from "../../src/instances/drivers/qemu/kvm.js";
import { findQemu } from "../../src/instances/drivers/qemu/process.js";
import { makeSeedIso } from "../../src/instances/drivers/qemu/seed.js";
import type { VmSpec } from "../../src/instances/driver.js";
import { emptyRunConfig } from "../../src/instances/runconfig.js";
import { eventually } from "../helpers/eventually.js";

const exec = promisify(execFile);

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lodge-qemu-host-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function isoFile(iso: string, name: string): Promise<string> {
  return (await exec("isoinfo", ["-i", iso, "-R", "-x", `/${name}`])).stdout;
}

test("the cloud-init seed: an ISO labelled cidata with meta-data, user-data, vendor-data and network-config", async (t) => {
  const dir = await tempDir(t);
  const iso = join(dir, "seed.iso");
  const network = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";
  await makeSeedIso(iso, {
    instanceId: "vm1",
    hostname: "web-1",
    cloudInit: { userData: "#cloud-config\npackages: [curl]\n", vendorData: "#cloud-config\n{}\n", networkConfig: network },
  });
  assert.match((await exec("isoinfo", ["-d", "-i", iso])).stdout, /^Volume id: cidata$/m);
  const names = (await exec("isoinfo", ["-i", iso, "-R", "-f"])).stdout.split("\n").filter(Boolean).sort();
  assert.deepEqual(names, ["/meta-data", "/network-config", "/user-data", "/vendor-data"]);
  assert.equal(await isoFile(iso, "meta-data"), 'instance-id: "vm1"\nlocal-hostname: "web-1"\n');
  assert.equal(await isoFile(iso, "user-data"), "#cloud-config\npackages: [curl]\n");
  assert.equal(await isoFile(iso, "network-config"), network);
  // Without the keys: an empty cloud-config (NoCloud needs user-data), no vendor-data or network-config.
  await makeSeedIso(iso, { instanceId: "vm1", hostname: "vm1", cloudInit: {} });
  const bare = (await exec("isoinfo", ["-i", iso, "-R", "-f"])).stdout.split("\n").filter(Boolean).sort();
  assert.deepEqual(bare, ["/meta-data", "/user-data"]);
  assert.equal(await isoFile(iso, "user-data"), "#cloud-config\n{}\n");
  assert.deepEqual((await readdir(dir)).sort(), ["seed.iso"], "no staging files left");
});

test("the accelerator probe: TCG boots the probe guest, and KVM is chosen only when it boots it within the budget", async (t) => {
  const tcg = await probeBoot("qemu-system-x86_64", "tcg", 5_000);
  assert.equal(tcg.booted, true, `the probe guest boots under TCG: ${tcg.reason}`);
  const t0 = Date.now();
  const { accel, probe } = await detectAccelerator("qemu-system-x86_64");
  const ms = Date.now() - t0;
  assert.equal(accel, probe.booted ? "kvm" : "tcg");
  assert.ok(ms < 5_000, `probed in ${ms} ms`);
  // Cached: a second ask is immediate and the same.
  assert.deepEqual(await detectAccelerator("qemu-system-x86_64"), { accel, probe });
  const kvmUsable = await readFile("/proc/cpuinfo", "utf8").then((c) => /^flags.*\b(vmx|svm)\b/m.test(c));
  if (!kvmUsable) assert.equal(accel, "tcg", "no vmx/svm for this host's CPU: TCG");
  t.diagnostic(`accelerator ${accel}: KVM probe ${probe.booted ? "booted" : `failed (${probe.reason})`} in ${probe.ms} ms; TCG probe ${tcg.ms} ms`);
});

/** A UEFI VM on a blank raw disk, removed in t.after. */
async function uefiVm(t: TestContext, secureboot: boolean): Promise<{ driver: QemuDriver; spec: VmSpec }> {
  // Removed in the same hook, after QEMU: hooks run in the order they were added, and the
  // pidfile that finds QEMU is in this directory.
  const base = await mkdtemp(join(tmpdir(), "lodge-qemu-host-"));
  const driver = new QemuDriver({ dir: join(base, "vms"), accelerator: "tcg" });
  const disk = join(base, "root.img");
  await exec("qemu-img", ["create", "-q", "-f", "raw", disk, "64M"]);
  const spec: VmSpec = {
    name: `uefi${randomBytes(3).toString("hex")}`,
    rootfs: "",
    rootDisk: disk,
    cpus: 1,
    memoryBytes: 256 * 1024 * 1024,
    secureboot,
    cloudInit: {},
    stateDir: join(base, "state"),
    run: emptyRunConfig(),
  };
  t.after(async () => {
    const pid = await findQemu(driver.paths(spec.name).pidfile);
    if (pid) process.kill(pid, "SIGKILL");
    await driver.delete(spec.name, { force: true }).catch(() => undefined);
    driver.close();
    await rm(base, { recursive: true, force: true });
  });
  await driver.create(spec);
  return { driver, spec };
}

const consoleShows = (driver: QemuDriver, name: string, re: RegExp) =>
  eventually(async () => re.test(await readFile(driver.consoleLogPath(name), "utf8").catch(() => "")), `${re} on the serial console`, 60_000, 100);

test("UEFI boot: OVMF with an NVRAM of the VM's own reaches the EFI shell on the serial console", async (t) => {
  const { driver, spec } = await uefiVm(t, false);
  await driver.start(spec);
  assert.deepEqual(await readdir(spec.stateDir), ["nvram.fd"]);
  await consoleShows(driver, spec.name, /UEFI Interactive Shell/);
  await driver.stop(spec.name, { force: true });
  // The NVRAM is the VM's: kept across starts, and a secure boot start gets a store of its own.
  const nvram = await readFile(join(spec.stateDir, "nvram.fd"));
  await driver.start({ ...spec, secureboot: true });
  assert.deepEqual((await readdir(spec.stateDir)).sort(), ["nvram.fd", "nvram.ms.fd"]);
  assert.ok((await readFile(join(spec.stateDir, "nvram.fd"))).equals(nvram));
});

test("secure boot: OVMF with Microsoft's keys refuses the unsigned EFI shell", async (t) => {
  const { driver, spec } = await uefiVm(t, true);
  await driver.start(spec);
  assert.match(await readFile(driver.paths(spec.name).config, "utf8"), /^q35,smm=on$/m);
  await consoleShows(driver, spec.name, /"EFI Internal Shell".*: Security Violation/);
});

test("a raw root disk stays raw: a qcow2 header written into it by the guest is refused at the next start", async (t) => {
  const { driver, spec } = await uefiVm(t, false);
  await driver.start(spec);
  await driver.stop(spec.name, { force: true });
  // What a guest could write to its raw disk: a qcow2 header naming a host file as backing file.
  const base = join(spec.stateDir, "..");
  const evil = join(base, "evil.qcow2");
  await exec("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname", evil, "64M"]);
  await writeFile(spec.rootDisk, await readFile(evil));
  await assert.rejects(driver.start(spec), /now looks like qcow2, but it was raw/);
  assert.equal((await driver.status(spec.name)).status, "Stopped");
});
