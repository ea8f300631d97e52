/**
 * One lodged (with the busybox image as "bb") for a whole CLI test file, started before its
 * tests and destroyed after them, and `lodge` run against it: `lodge` gives the result whatever
 * the exit code, `ok` asserts exit 0.
 */
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { busyboxImage } from "./busybox-image.js";
import { TestDaemon, type RunResult } from "./daemon.js";

export interface CliDaemon {
  readonly d: TestDaemon;
  lodge(args: string[], opts?: { input?: string }): Promise<RunResult>;
  ok(args: string[], opts?: { input?: string }): Promise<RunResult>;
}

export function cliDaemonForFile(): CliDaemon {
  let d: TestDaemon | undefined;
  before(async () => {
    d = await TestDaemon.start(undefined);
    await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  });
  after(async () => {
    await d?.destroy();
  });
  const lodge = (args: string[], opts: { input?: string } = {}) => d!.lodge(args, { allowFail: true, input: opts.input });
  return {
    get d() {
      return d!;
    },
    lodge,
    async ok(args, opts) {
      const r = await lodge(args, opts);
      assert.equal(r.code, 0, `lodge ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
      return r;
    },
  };
}
