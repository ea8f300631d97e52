// limits.cpu set and lifted on a running container, read back from its cgroup (v1 or v2, as
// the host has it, through src/sys/cgroup.ts) and from what the kernel lets its init run on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Cgroup } from "../../src/sys/cgroup.js";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

const pidOf = async (d: TestDaemon, name: string) => (await d.client.get<{ pid: number }>(`/1.0/instances/${name}/state`)).pid;
const allowedCpus = async (pid: number) => /^Cpus_allowed_list:\s+(\S+)$/m.exec(await readFile(`/proc/${pid}/status`, "utf8"))![1]!;

/** A cgroup file in init's cgroup and each ancestor up to the container's lxc.payload.NAME. */
async function upToPayload(dir: string, file: string): Promise<string[]> {
  const values: string[] = [];
  for (let d = dir; d.includes("/lxc.payload."); d = dirname(d)) values.push((await readFile(join(d, file), "utf8")).trim());
  return values;
}

/** The CPU bandwidth limit in force: "quota period" of the tightest level, or "max". */
async function cpuQuota(pid: number): Promise<string> {
  const d = (await Cgroup.ofPid(pid)).dir("cpu");
  assert.ok(d, "the host has a cpu controller");
  if (d.version === 2) return (await upToPayload(d.dir, "cpu.max")).find((v) => !v.startsWith("max")) ?? "max";
  const quotas = await upToPayload(d.dir, "cpu.cfs_quota_us");
  const periods = await upToPayload(d.dir, "cpu.cfs_period_us");
  const i = quotas.findIndex((q) => q !== "-1");
  return i < 0 ? "max" : `${quotas[i]} ${periods[i]}`;
}

/** The CPUs the container's cgroup lets it use, as the kernel computed them. */
async function effectiveCpus(pid: number): Promise<string> {
  const d = (await Cgroup.ofPid(pid)).dir("cpuset");
  assert.ok(d, "the host has a cpuset controller");
  return (await readFile(join(d.dir, d.version === 1 ? "cpuset.effective_cpus" : "cpuset.cpus.effective"), "utf8")).trim();
}

test("limits.cpu: pinning and a CPU count apply live to the running container and are lifted live", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "c1"]);
  t.after(() => d.lxc(["delete", "--force", "c1"], { allowFail: true }));
  const pid = await pidOf(d, "c1");
  const hostCpus = await allowedCpus(process.pid);
  assert.equal(await allowedCpus(pid), hostCpus, "no limit: every host CPU");
  assert.equal(await cpuQuota(pid), "max");
  const last = /(\d+)$/.exec(hostCpus)![1]!;

  // Pinning to one CPU: the cgroup's cpuset and the kernel's affinity of init both say so.
  await d.lxc(["config", "set", "c1", "limits.cpu", `${last}-${last}`]);
  assert.equal(await effectiveCpus(pid), last);
  assert.equal(await allowedCpus(pid), last);
  assert.equal((await d.lxc(["exec", "c1", "--", "nproc"])).stdout.trim(), "1", "one CPU seen inside");
  await d.lxc(["config", "unset", "c1", "limits.cpu"]);
  assert.equal(await allowedCpus(pid), hostCpus, "pinning lifted");
  assert.equal(await effectiveCpus(pid), hostCpus);

  // A count: that many CPUs' worth of time per period.
  await d.lxc(["config", "set", "c1", "limits.cpu", "1"]);
  assert.equal(await cpuQuota(pid), "100000 100000");
  await d.lxc(["config", "unset", "c1", "limits.cpu"]);
  assert.equal(await cpuQuota(pid), "max", "quota lifted");

  assert.equal(await pidOf(d, "c1"), pid, "applied live: never restarted");
  assert.equal((await d.lxc(["exec", "c1", "--", "echo", "ok"])).stdout, "ok\n");
});
