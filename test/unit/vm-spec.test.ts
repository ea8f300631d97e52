import test from "node:test";
import assert from "node:assert/strict";
import { instanceTypeLimits } from "../../src/instances/create-request.js";
import { cpuCount, memoryBytes, VM_DEFAULT_MEMORY } from "../../src/instances/vm-spec.js";

test("instance_type cN-mM gives limits.cpu and limits.memory; other names are refused by name", () => {
  assert.deepEqual(instanceTypeLimits("c2-m4"), { "limits.cpu": "2", "limits.memory": "4096MiB" });
  assert.deepEqual(instanceTypeLimits("c0.5-m0.5"), { "limits.cpu": "1", "limits.memory": "512MiB" });
  assert.deepEqual(instanceTypeLimits(undefined), {});
  assert.throws(() => instanceTypeLimits("t2.micro"), /Unknown instance_type "t2.micro"/);
});

test("a VM's CPUs and memory from limits.*: counts, pinning sets, sizes, percentages, LXD's defaults", () => {
  assert.equal(cpuCount(undefined), 1);
  assert.equal(cpuCount("4"), 4);
  assert.equal(cpuCount("0-1,3"), 3);
  assert.equal(memoryBytes(undefined, 8 * 2 ** 30), VM_DEFAULT_MEMORY);
  assert.equal(memoryBytes("512MiB", 8 * 2 ** 30), 512 * 2 ** 20);
  assert.equal(memoryBytes("25%", 8 * 2 ** 30), 2048 * 2 ** 20);
  assert.equal(memoryBytes("1GB", 8 * 2 ** 30), Math.floor(1e9 / (1 << 20)) * (1 << 20), "whole MiB for QEMU");
});
