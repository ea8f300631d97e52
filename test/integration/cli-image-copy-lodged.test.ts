import test from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { TestDaemon, LODGE, runCommand } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";
import type { Image } from "../../src/images/types.js";

// `lodge image copy` from a second lodged over the LXD protocol (unix://), with the progress
// the user sees on a terminal.
test("lodge image copy pulls from a second lodged and shows progress on a terminal", async (t) => {
  const source = await TestDaemon.start(t);
  const target = await TestDaemon.start(t);
  const img = await busyboxImage();
  await source.lxc(["image", "import", img.file, "--alias", "bb"]);
  const conf = join(target.dir, "lodge-client.yml");
  const env = { LODGE_CONF: conf };
  await target.lodge(["remote", "add", "other", `unix://${source.socket}`, "--protocol", "lxd"], { env });

  // `script` gives the CLI a terminal, which is when it draws progress.
  const cmd = `LODGE_DIR=${target.dir} LODGE_CONF=${conf} ${process.execPath} ${LODGE} image copy other:bb local: --alias copied`;
  const r = await runCommand("script", ["-qec", cmd, "/dev/null"], { timeoutMs: 60_000 });
  assert.match(r.stdout, /Image copied with fingerprint: [0-9a-f]{64}/);
  assert.match(r.stdout, /\d+%|[\d.]+[kMG]?B/, `progress was drawn: ${JSON.stringify(r.stdout)}`);

  const images = await target.client.get<Image[]>("/1.0/images?recursion=1");
  assert.equal(images.length, 1);
  assert.equal(images[0]!.fingerprint, img.fingerprint, "the same image, verified by its fingerprint");
  assert.deepEqual(images[0]!.aliases.map((a) => a.name), ["copied"]);
  assert.equal(images[0]!.update_source?.protocol, "lxd");
});
