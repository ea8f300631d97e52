import test from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { TestDaemon, runCommand } from "../helpers/daemon.js";
import type { Operation } from "../../src/api/operation.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// What the `lxc` client and pylxd rely on in exec and delete, as LXD 5.0.2 does it.

async function daemonWithImage(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  return d;
}

/**
 * `lxc exec` on a terminal (script gives it one), fed by a shell command's output: its input
 * arrives before the command reads it. ("sleep 5" feeds nothing and keeps the terminal open, so
 * no end-of-input character is echoed into the output.)
 */
const onTerminal = (d: TestDaemon, feed: string, cmd: string) =>
  runCommand("sh", ["-c", `${feed} | script -qec "${cmd}" /dev/null`], {
    env: { LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") },
  });

test("interactive exec never loses input typed before the command reads it", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c"]);
  for (let i = 0; i < 3; i++) {
    const r = await onTerminal(d, "printf 'hello\\n'", "lxc exec c -- sh -c 'read x; echo got-\\$x'");
    assert.match(r.stdout, /got-hello/, `round ${i}: ${JSON.stringify(r.stdout)}`);
  }
});

test("exec defaults as LXD: cwd is the user's home, HOME/USER/LANG/PATH set, user env wins; both exec paths agree", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c"]);
  const show = "pwd; echo HOME=$HOME; echo USER=$USER; echo LANG=$LANG; echo PATH=$PATH";
  const plain = (await d.lxc(["exec", "c", "--", "sh", "-c", show])).stdout;
  assert.equal(plain, "/root\nHOME=/root\nUSER=root\nLANG=C.UTF-8\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
  // The pty path (lxc-attach) gives the same as the agent path.
  const tty = await onTerminal(d, "sleep 5", `lxc exec c -- sh -c '${show.replace(/\$/g, "\\$")}'`);
  assert.equal(tty.stdout.replace(/\r/g, ""), plain);
  // Given values win.
  const given = (await d.lxc(["exec", "c", "--env", "HOME=/tmp", "--env", "LANG=fr_FR.UTF-8", "--", "sh", "-c", "pwd; echo $HOME $LANG"])).stdout;
  assert.equal(given, "/tmp\n/tmp fr_FR.UTF-8\n");
  // /snap/bin joins PATH once the instance has /snap, as LXD does.
  await d.lxc(["exec", "c", "--", "mkdir", "/snap"]);
  assert.equal((await d.lxc(["exec", "c", "--", "sh", "-c", "echo $PATH"])).stdout, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin\n");
  // Another user: the home from the instance's own /etc/passwd.
  await d.lxc(["exec", "c", "--", "sh", "-c", "mkdir -p /home/ann && chown 1234:1234 /home/ann && echo 'ann:x:1234:1234::/home/ann:/bin/sh' >> /etc/passwd"]);
  assert.equal((await d.lxc(["exec", "c", "--user", "1234", "--", "sh", "-c", "pwd; echo $HOME $USER"])).stdout, "/home/ann\n/home/ann ann\n");
  const ttyAnn = await onTerminal(d, "sleep 5", "lxc exec c --user 1234 -- sh -c 'pwd; echo \\$HOME \\$USER'");
  assert.equal(ttyAnn.stdout.replace(/\r/g, ""), "/home/ann\n/home/ann ann\n");
  // A user that is not a uid is refused by name.
  const bad = await d.client.raw("POST", "/1.0/instances/c/exec", { command: ["true"], user: "ann" });
  assert.equal(bad.status, 400);
  assert.match((bad.body as { error?: string }).error ?? "", /"user" must be a uid/);
  // A uid with no passwd entry runs in / with no HOME, as LXD does.
  assert.equal((await d.lxc(["exec", "c", "--user", "4321", "--", "sh", "-c", "pwd; echo [$HOME]"])).stdout, "/\n[]\n");
});

test("a plain DELETE of a running instance is refused and changes nothing; lxc delete --force stops, then deletes", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c"]);
  const pid = (await d.client.get<{ pid: number }>("/1.0/instances/c/state")).pid;
  const r = await d.client.raw("DELETE", "/1.0/instances/c");
  assert.equal(r.status, 400);
  assert.match(JSON.stringify(r.body), /Instance is running/);
  const after = await d.client.get<{ status: string; pid: number }>("/1.0/instances/c/state");
  assert.deepEqual([after.status, after.pid], ["Running", pid], "the workload is untouched");
  // Frozen counts as running, as in LXD.
  await d.lxc(["pause", "c"]);
  assert.equal((await d.client.raw("DELETE", "/1.0/instances/c")).status, 400);
  await d.client.wait((await d.client.put<Operation>("/1.0/instances/c/state", { action: "unfreeze" })).id);
  const plain = await d.lxc(["delete", "c"], { allowFail: true });
  assert.notEqual(plain.code, 0);
  assert.equal((await d.client.get<{ status: string }>("/1.0/instances/c/state")).status, "Running");
  await d.lxc(["delete", "--force", "c"]);
  assert.deepEqual(await d.client.get<string[]>("/1.0/instances"), []);
});

test("errors name the real state: exec in a frozen instance, start/stop/pause/resume in the wrong state", async (t) => {
  const d = await daemonWithImage(t);
  await d.lxc(["launch", "bb", "c"]);
  const fails = async (args: string[], message: RegExp) => {
    const r = await d.lxc(args, { allowFail: true });
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.stderr, message, args.join(" "));
  };
  const state = (action: string) => d.client.raw("PUT", "/1.0/instances/c/state", { action });
  const opError = async (action: string) => {
    const r = await state(action);
    if (r.status >= 400) return JSON.stringify(r.body);
    return d.client.wait((r.body as { operation: string }).operation).then(
      (op) => op.err,
      (e: Error) => e.message,
    );
  };
  assert.match(await opError("start"), /The instance is already running/);
  assert.match(await opError("unfreeze"), /already running/);
  await d.lxc(["pause", "c"]);
  await fails(["exec", "c", "--", "true"], /Instance is frozen/);
  assert.match(await opError("freeze"), /already frozen/);
  assert.match(await opError("start"), /The instance is already running/);
  await d.client.wait((await d.client.put<Operation>("/1.0/instances/c/state", { action: "unfreeze" })).id);
  await d.lxc(["stop", "c", "--force"]);
  await fails(["exec", "c", "--", "true"], /Instance is not running/);
  assert.match(await opError("stop"), /The instance is already stopped/);
  assert.match(await opError("freeze"), /isn't running/);
  assert.match(await opError("unfreeze"), /isn't running/);
});
