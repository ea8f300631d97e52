import test from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { tinyVmImage } from "../helpers/vm-image.js";

// A virtual machine through Debian's python3-pylxd (2.2.10), under TCG. That pylxd predates
// `client.instances` (it has `client.containers` only, on /1.0/containers): a VM is asked for
// the way its users do it, with "type": "virtual-machine" in the create request.

const PYTHON = "/usr/bin/python3";

const SCRIPT = String.raw`
import json, sys, time, urllib.parse, warnings
warnings.simplefilter("ignore")
import pylxd

sock = sys.argv[1]
client = pylxd.Client(endpoint="http+unix://" + urllib.parse.quote(sock, safe=""))
out = {}
vm = client.containers.create({"name": "pyvm", "type": "virtual-machine",
                               "source": {"type": "image", "alias": "tiny"}}, wait=True)
# pylxd 2.2's Container model has no "type" attribute: read it from the raw answer.
out["type"] = client.api.containers["pyvm"].get().json()["metadata"]["type"]
vm.start(wait=True)
vm.sync()
out["started"] = vm.status
# The start ends when QEMU runs; the agent answers once the guest has booted.
t0, last = time.time(), None
while time.time() - t0 < 120:
    try:
        r = vm.execute(["true"])
        if r.exit_code == 0:
            break
        last = r
    except Exception as e:
        last = repr(e)
    time.sleep(0.5)
else:
    raise SystemExit("the agent never answered: %r" % (last,))
out["agent_ms"] = int((time.time() - t0) * 1000)
r = vm.execute(["uname", "-r"])
out["uname"] = [r.exit_code, r.stdout, r.stderr]
r = vm.execute(["sh", "-c", "echo out; echo err >&2; exit 5"])
out["streams"] = [r.exit_code, r.stdout, r.stderr]
vm.stop(wait=True)
vm.sync()
out["stopped"] = vm.status
vm.delete(wait=True)
out["after_delete"] = [x.name for x in client.containers.all()]
print(json.dumps(out))
`;

test("pylxd creates a VM, starts it, execs in it (the guest's kernel), stops and deletes it", { timeout: 600_000 }, async (t) => {
  const d = await TestDaemon.start(t);
  const img = await tinyVmImage();
  await d.lxc(["image", "import", img.metadata, img.rootfs, "--alias", "tiny"]);
  const r = await runCommand(PYTHON, ["-c", SCRIPT, d.socket], { timeoutMs: 400_000, allowFail: true });
  assert.equal(r.code, 0, `pylxd failed:\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
  t.diagnostic(`start → agent answering pylxd's exec: ${out.agent_ms} ms`);
  assert.equal(out.type, "virtual-machine");
  assert.equal(out.started, "Running");
  const [code, kernel, stderr] = out.uname as [number, string, string];
  assert.equal(code, 0, stderr);
  assert.match(kernel.trim(), /^\d+\.\d+\.\d+-\d+-cloud-amd64$/, "Debian's cloud kernel, the tiny image's");
  assert.notEqual(kernel.trim(), (await runCommand("uname", ["-r"])).stdout.trim(), "not the host's kernel");
  assert.deepEqual(out.streams, [5, "out\n", "err\n"]);
  assert.equal(out.stopped, "Stopped");
  assert.deepEqual(out.after_delete, []);
  assert.deepEqual(await readdir(join(d.dir, "virtual-machines")).catch(() => []), [], "no VM directory left");
});
