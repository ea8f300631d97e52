import test from "node:test";
import assert from "node:assert/strict";
import { runCommand, TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// Debian's python3-pylxd (2.2.x) against lodged. That pylxd knows only the pre-`instances`
// API (/1.0/containers), which lodged serves as an alias, and runs exec over ws4py with the
// stdin/stdout/stderr websockets only (it never connects "control").

/** Debian's interpreter: pylxd and ws4py are Debian packages, not in another python's path. */
const PYTHON = "/usr/bin/python3";

const SCRIPT = String.raw`
import json, sys, urllib.parse, warnings
warnings.simplefilter("ignore")
import pylxd

sock, step = sys.argv[1], sys.argv[2]
client = pylxd.Client(endpoint="http+unix://" + urllib.parse.quote(sock, safe=""))
out = {"trusted": client.trusted}
if step == "lifecycle":
    c = client.containers.create({"name": "py1", "source": {"type": "image", "alias": "bb"}}, wait=True)
    out["created"] = [x.name for x in client.containers.all()]
    c.start(wait=True)
    c.sync()
    out["started"] = c.status
    c.files.put("/root/from-pylxd", b"pushed by pylxd\n")
    out["file"] = c.files.get("/root/from-pylxd").decode()
    c.stop(wait=True)
    c.sync()
    out["stopped"] = c.status
    c.delete(wait=True)
    out["after_delete"] = [x.name for x in client.containers.all()]
elif step == "exec":
    c = client.containers.create({"name": "py2", "source": {"type": "image", "alias": "bb"}}, wait=True)
    c.start(wait=True)
    r = c.execute(["sh", "-c", "echo out; echo err >&2; exit 3"])
    out["exec"] = [r.exit_code, r.stdout, r.stderr]
    c.stop(wait=True)
    c.delete(wait=True)
elif step == "profiles":
    p = client.profiles.create("pyprof", config={"limits.memory": "96MiB", "user.from": "pylxd"},
                               devices={"tmp": {"type": "disk", "source": "/tmp", "path": "/mnt/tmp"}})
    out["profile"] = [p.name, p.config, p.devices]
    out["exists"] = client.profiles.exists("pyprof")
    c = client.containers.create({"name": "py3", "source": {"type": "image", "alias": "bb"},
                                  "profiles": ["default", "pyprof"]}, wait=True)
    out["instance"] = [c.profiles, c.expanded_config.get("user.from"), sorted(c.expanded_devices)]
    p = client.profiles.get("pyprof")
    out["used_by"] = p.used_by
    p.config["user.from"] = "pylxd, edited"
    p.save()
    c.sync()
    out["edited"] = c.expanded_config.get("user.from")
    try:
        p.delete()
        out["delete_in_use"] = "deleted"
    except pylxd.exceptions.LXDAPIException as e:
        out["delete_in_use"] = str(e)
    c.delete(wait=True)
    p.delete()
    out["after"] = [x.name for x in client.profiles.all()]
print(json.dumps(out))
`;

async function pylxd(t: test.TestContext, step: string) {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  const r = await runCommand(PYTHON, ["-c", SCRIPT, d.socket, step], { timeoutMs: 120_000 });
  return { d, out: JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown> };
}


test("pylxd creates, starts, pushes a file to, stops and deletes a container", async (t) => {
  const { d, out } = await pylxd(t, "lifecycle");
  assert.equal(out.trusted, true);
  assert.deepEqual(out.created, ["py1"]);
  assert.equal(out.started, "Running");
  assert.equal(out.file, "pushed by pylxd\n");
  assert.equal(out.stopped, "Stopped");
  assert.deepEqual(out.after_delete, []);
  assert.equal((await d.lxc(["list", "-f", "csv", "-c", "n"])).stdout.trim(), "");
});

// pylxd connects fds 0, 1 and 2 but never "control": the command must start without it.
test("pylxd execs in a container: exit code, stdout and stderr", async (t) => {
  const { out } = await pylxd(t, "exec");
  assert.deepEqual(out.exec, [3, "out\n", "err\n"]);
});

test("pylxd creates a profile and a container that uses it; the profile's edit reaches it", async (t) => {
  const { out } = await pylxd(t, "profiles");
  assert.deepEqual(out.profile, ["pyprof", { "limits.memory": "96MiB", "user.from": "pylxd" }, { tmp: { type: "disk", source: "/tmp", path: "/mnt/tmp" } }]);
  assert.equal(out.exists, true);
  assert.deepEqual(out.instance, [["default", "pyprof"], "pylxd", ["root", "tmp"]]);
  assert.deepEqual(out.used_by, ["/1.0/instances/py3"]);
  assert.equal(out.edited, "pylxd, edited");
  assert.match(String(out.delete_in_use), /in use by instance "py3"/);
  assert.deepEqual(out.after, ["default"]);
});
