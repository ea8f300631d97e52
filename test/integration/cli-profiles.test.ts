import test, { type TestContext } from "node:test";
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { Operation } from "../../src/api/operation.js";
import type { Profile } from "../../src/api/profile.js";
import { runCommand } from "../helpers/daemon.js";
import { cliDaemonForFile } from "../helpers/cli-daemon.js";

// `lodge profile …` and `lodge launch/init -p/--no-profiles` against a real lodged. One daemon
// for the file; every test removes what it made.
const cli = cliDaemonForFile();
const { lodge, ok } = cli;

const profile = (name: string) => cli.d.client.get<Profile>(`/1.0/profiles/${name}`);
const profileNames = async () => (await cli.d.client.get<string[]>("/1.0/profiles")).map((u) => u.split("/").pop()!).sort();

/** Removes instances and profiles other than default when the test ends, through the API. */
function cleanUp(t: TestContext): void {
  t.after(async () => {
    for (const u of await cli.d.client.get<string[]>("/1.0/instances")) {
      const n = u.split("/").pop()!;
      await cli.d.client.wait(await cli.d.client.put<Operation>(`/1.0/instances/${n}/state`, { action: "stop", force: true })).catch(() => {});
      await cli.d.client.wait(await cli.d.client.delete<Operation>(`/1.0/instances/${n}`));
    }
    for (const n of await profileNames()) if (n !== "default") await cli.d.client.delete(`/1.0/profiles/${n}`);
  });
}

test("profile create, set, get, unset, show, edit, copy, rename, delete, list in every format", async (t) => {
  cleanUp(t);
  assert.equal((await ok(["profile", "create", "web", "--description", "Web servers"])).stdout, "Profile web created\n");
  await ok(["profile", "set", "web", "limits.memory=256MiB", "user.role=web"]);
  await ok(["profile", "set", "web", "limits.cpu", "1"]);
  assert.equal((await ok(["profile", "get", "web", "user.role"])).stdout, "web\n");
  await ok(["profile", "unset", "web", "limits.cpu"]);
  const unsetMissing = await lodge(["profile", "unset", "web", "limits.cpu"]);
  assert.equal(unsetMissing.code, 2);
  assert.match(unsetMissing.stderr, /Config key "limits.cpu" is not set in profile "web"/);

  const shown = parseYaml((await ok(["profile", "show", "web"])).stdout) as Profile;
  assert.deepEqual(shown, { name: "web", description: "Web servers", config: { "limits.memory": "256MiB", "user.role": "web" }, devices: {}, used_by: [] });
  assert.deepEqual(JSON.parse((await ok(["profile", "show", "web", "--format", "json"])).stdout), shown);

  // edit from stdin takes what show printed (name and used_by are ignored).
  await ok(["profile", "edit", "web"], { input: "name: web\nused_by: []\ndescription: Edited\nconfig:\n  limits.memory: 128MiB\ndevices: {}\n" });
  assert.deepEqual(await profile("web"), { name: "web", description: "Edited", config: { "limits.memory": "128MiB" }, devices: {}, used_by: [] });
  const badEdit = await lodge(["profile", "edit", "web"], { input: "config:\n  limits.memory: lots\n" });
  assert.equal(badEdit.code, 1);
  assert.match(badEdit.stderr, /limits\.memory/);
  assert.equal((await profile("web")).config["limits.memory"], "128MiB");

  await ok(["profile", "create", "db"], { input: "description: From stdin\nconfig:\n  user.role: db\n" });
  assert.equal((await profile("db")).description, "From stdin");
  await ok(["profile", "copy", "web", "web2"]);
  assert.deepEqual((await profile("web2")).config, { "limits.memory": "128MiB" });
  assert.equal((await ok(["profile", "rename", "web2", "web3"])).stdout, "Profile web2 renamed to web3\n");
  assert.deepEqual(await profileNames(), ["db", "default", "web", "web3"]);

  assert.equal((await ok(["profile", "list", "--format", "csv"])).stdout, "db,From stdin,0\ndefault,Default Lodge profile,0\nweb,Edited,0\nweb3,Edited,0\n");
  const table = (await ok(["profile", "list"])).stdout;
  assert.match(table, /\| *NAME *\| *DESCRIPTION *\| *USED BY *\|/);
  assert.match(table, /\| web3 +\| Edited +\| 0 +\|/);
  const json = JSON.parse((await ok(["profile", "list", "--format", "json"])).stdout) as Profile[];
  assert.deepEqual(json.map((p) => p.name), ["db", "default", "web", "web3"]);
  const yaml = parseYaml((await ok(["profile", "ls", "--format", "yaml"])).stdout) as Profile[];
  assert.deepEqual(yaml[2], await profile("web"));

  assert.equal((await ok(["profile", "delete", "web3", "db"])).stdout, "Profile web3 deleted\nProfile db deleted\n");
  const gone = await lodge(["profile", "show", "db"]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /Profile "db" not found/);
  const dup = await lodge(["profile", "create", "web"]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /Profile "web" already exists/);
  const def = await lodge(["profile", "delete", "default"]);
  assert.equal(def.code, 1);
  assert.match(def.stderr, /"default" profile cannot be deleted/);
});

test("profile device add, set, get, unset, list, show, remove", async (t) => {
  cleanUp(t);
  await ok(["profile", "create", "px"]);
  assert.equal((await ok(["profile", "device", "add", "px", "tmp", "disk", "source=/tmp", "path=/mnt/tmp"])).stdout, "Device tmp added to px\n");
  await ok(["profile", "device", "set", "px", "tmp", "readonly=true"]);
  assert.equal((await ok(["profile", "device", "get", "px", "tmp", "readonly"])).stdout, "true\n");
  assert.equal((await ok(["profile", "device", "get", "px", "tmp", "shift"])).stdout, "\n", "an unset key prints an empty line, as lxc does");
  assert.match((await lodge(["profile", "device", "get", "px", "nope", "path"])).stderr, /Device "nope" does not exist in profile "px"/);
  assert.deepEqual(parseYaml((await ok(["profile", "device", "show", "px"])).stdout), { tmp: { type: "disk", source: "/tmp", path: "/mnt/tmp", readonly: "true" } });
  await ok(["profile", "device", "unset", "px", "tmp", "readonly"]);
  assert.deepEqual((await profile("px")).devices, { tmp: { type: "disk", source: "/tmp", path: "/mnt/tmp" } });
  assert.equal((await ok(["profile", "device", "list", "px"])).stdout, "tmp\n");
  const bad = await lodge(["profile", "device", "add", "px", "nope", "disk", "path=/mnt/x"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Invalid device "nope".*"source" is required/);
  assert.equal((await ok(["profile", "device", "remove", "px", "tmp"])).stdout, "Device tmp removed from px\n");
  assert.deepEqual((await profile("px")).devices, {});
  const missing = await lodge(["profile", "device", "remove", "px", "tmp"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Device "tmp" does not exist in profile "px"/);
});

test("launch/init -p and --no-profiles; profile add, remove and assign on an instance", async (t) => {
  cleanUp(t);
  await ok(["profile", "create", "a"]);
  await ok(["profile", "set", "a", "user.x=a", "user.y=a"]);
  await ok(["profile", "create", "b"]);
  await ok(["profile", "set", "b", "user.y=b"]);
  await ok(["init", "bb", "i1", "-p", "default", "-p", "a", "-p", "b"]);
  const i1 = await cli.d.client.get<{ profiles: string[]; expanded_config: Record<string, string> }>("/1.0/instances/i1");
  assert.deepEqual(i1.profiles, ["default", "a", "b"]);
  assert.equal(i1.expanded_config["user.x"], "a");
  assert.equal(i1.expanded_config["user.y"], "b");
  assert.match((await ok(["config", "show", "i1", "--expanded"])).stdout, /user\.y: b/);

  const noRoot = await lodge(["init", "bb", "i2", "--no-profiles"]);
  assert.equal(noRoot.code, 1);
  assert.match(noRoot.stderr, /no root device/);
  const unknown = await lodge(["init", "bb", "i2", "-p", "nope"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /Profile "nope" not found/);

  await ok(["init", "bb", "i3"]);
  assert.equal((await ok(["profile", "add", "i3", "a,b"])).stdout, "Profile a,b added to i3\n");
  assert.deepEqual((await cli.d.client.get<{ profiles: string[] }>("/1.0/instances/i3")).profiles, ["default", "a", "b"]);
  await ok(["profile", "remove", "i3", "a"]);
  assert.deepEqual((await cli.d.client.get<{ profiles: string[] }>("/1.0/instances/i3")).profiles, ["default", "b"]);
  assert.equal((await ok(["profile", "assign", "i3", "default,a"])).stdout, "Profiles default,a applied to i3\n");
  assert.deepEqual((await cli.d.client.get<{ profiles: string[] }>("/1.0/instances/i3")).profiles, ["default", "a"]);
  const rootless = await lodge(["profile", "assign", "i3", "a"]);
  assert.equal(rootless.code, 1);
  assert.match(rootless.stderr, /no root device/);
  const twice = await lodge(["profile", "add", "i3", "a"]);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /already applied/);
  assert.deepEqual((await cli.d.client.get<{ profiles: string[] }>("/1.0/instances/i3")).profiles, ["default", "a"]);
  assert.deepEqual((await profile("a")).used_by, ["/1.0/instances/i1", "/1.0/instances/i3"]);
  const inUse = await lodge(["profile", "delete", "a"]);
  assert.equal(inUse.code, 1);
  assert.match(inUse.stderr, /in use by instance "i1", instance "i3"/);
});

test("help on every profile verb, and completion knows them", async () => {
  const verbs = ["list", "show", "create", "copy", "edit", "get", "set", "unset", "rename", "delete", "device", "add", "remove", "assign"];
  const help = (await ok(["profile", "--help"])).stdout;
  for (const v of verbs) assert.match(help, new RegExp(`^  ${v}\\b`, "m"), v);
  for (const v of [...verbs.map((v) => [v]), ...["add", "remove", "list", "show", "get", "set", "unset"].map((v) => ["device", v])]) {
    const r = await ok(["profile", ...v, "--help"]);
    assert.match(r.stdout, new RegExp(`^Usage: lodge profile ${v.join(" ")}\\b`));
  }
  assert.match((await ok(["launch", "--help"])).stdout, /--no-profiles/);
  const bash = (await ok(["completion", "bash"])).stdout;
  assert.match(bash, /\['lodge profile'\]='list ls show create copy cp edit get set unset rename mv delete rm device add remove assign apply'/);
  assert.match(bash, /\['lodge profile device'\]='add remove rm list ls show get set unset'/);
  const check = await runCommand("bash", ["-c", 'eval "$(cat)"; COMP_WORDS=(lodge profile de); COMP_CWORD=2; _lodge; echo "${COMPREPLY[*]}"'], { input: bash });
  assert.equal(check.stdout.trim(), "delete device");
});
