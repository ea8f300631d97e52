/**
 * Storage pools for tests, per driver: where each test's pool lives (a temporary directory for
 * dir; a loop file that lodged makes in its own directory, for btrfs), removed with the test. The driver suites run once per entry of STORAGE_DRIVERS.
 */
import type { TestContext } from "node:test";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const STORAGE_DRIVERS = ["dir", "btrfs"] as const;
export type TestDriver = (typeof STORAGE_DRIVERS)[number];

/** `lxc storage create NAME DRIVER …` arguments for a pool of the test's own. */
export async function storagePoolArgs(t: TestContext, driver: TestDriver): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), `lodge-pool-${driver}-`));
  // An unprivileged container's root passes through it to a rootfs in the pool.
  await chmod(dir, 0o711);
  t.after(() => rm(dir, { recursive: true, force: true }));
  switch (driver) {
    case "dir":
      return [`source=${join(dir, "pool")}`];
    case "btrfs":
      // A loop file lodged makes under its own directory; the test daemon's destroy unmounts
      // it and detaches the loop device.
      return ["size=300MiB"];
  }
}
