import test from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

// `lxc console` (Debian's lxd-client 5.0.2) against lodged: the console log, and an
// interactive console on a terminal made by util-linux `script`.

async function daemonWithContainer(t: test.TestContext) {
  const d = await TestDaemon.start(t);
  const img = await busyboxImage();
  await d.lxc(["image", "import", img.file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "c1"]);
  return d;
}

/** Polls until `check` holds; fails with `what` after the timeout. */
async function until(check: () => boolean, what: string | (() => string), timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 10; !check(); delay = Math.min(delay * 2, 200)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

test("the console log: what the container wrote to /dev/console, and reset", async (t) => {
  const d = await daemonWithContainer(t);
  // liblxc's monitor writes the console log on its own schedule: read until the line is in.
  const showLog = async (marker: RegExp) => {
    let text = "";
    for (let i = 0; i < 50 && !marker.test(text); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      text = (await d.lxc(["console", "c1", "--show-log"])).stdout;
    }
    return text;
  };
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo console-marker-1 > /dev/console"]);
  const log = await showLog(/console-marker-1/);
  assert.match(log, /Console log:/);
  assert.match(log, /console-marker-1/);

  await d.lxc(["query", "-X", "DELETE", "/1.0/instances/c1/console"]);
  await d.lxc(["exec", "c1", "--", "sh", "-c", "echo console-marker-2 > /dev/console"]);
  const after = await showLog(/console-marker-2/);
  assert.doesNotMatch(after, /console-marker-1/, "the reset emptied the log");
  assert.match(after, /console-marker-2/);

  // A stopped container keeps its log; attaching needs it running.
  await d.lxc(["stop", "c1"]);
  assert.match((await d.lxc(["console", "c1", "--show-log"])).stdout, /console-marker-2/);
  // (Through the API: without a terminal the client stops before it asks.)
  const attach = await d.lxc(["query", "-X", "POST", "-d", "{}", "/1.0/instances/c1/console"], { allowFail: true });
  assert.notEqual(attach.code, 0);
  assert.match(attach.stderr, /not running/);
});

test("interactive console: type a command, read its output, detach with ctrl-a q", async (t) => {
  const d = await daemonWithContainer(t);
  // busybox init starts nothing on the console: put a shell there.
  await d.lxc(["exec", "c1", "--", "sh", "-c", 'setsid sh -c "exec sh -i </dev/console >/dev/console 2>&1" </dev/null >/dev/null 2>&1 &']);

  const child = spawn("script", ["--quiet", "--return", "--command", "lxc console c1", "/dev/null"], {
    env: { ...process.env, LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") },
    stdio: ["pipe", "pipe", "pipe"],
  });
  t.after(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)));

  await until(() => out.includes("To detach from the console"), "the client to attach");
  // The result, not the typed text: only a shell running on the console prints 42.
  child.stdin.write("\necho answer-$((6*7))\n");
  await until(() => out.includes("answer-42"), () => `the shell's answer on the console; the terminal showed ${JSON.stringify(out)}`);
  assert.match(out, /echo answer-\$\(\(6\*7\)\)/, "the typed line is echoed back");

  // The client reads its detach key byte by byte: ctrl-a, then q.
  child.stdin.write("\x01");
  await new Promise((r) => setTimeout(r, 300));
  child.stdin.write("q");
  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 15_000))]);
  assert.equal(code, 0, "lxc console detached and exited");

  // The session's operation ended and nothing is left attached.
  await until(() => {
    const ops = execFileSync("lxc", ["operation", "list", "-f", "csv"], {
      env: { ...process.env, LXD_SOCKET: d.socket, LXD_CONF: join(d.dir, ".lxc-client") },
    }).toString();
    return !/Showing console,RUNNING/.test(ops);
  }, "the console operation to finish");
  await until(() => !execFileSync("ps", ["-eo", "stat,args"]).toString().split("\n").some((l) => !l.startsWith("Z") && l.includes("lxc-console") && l.includes(d.dir)), "lxc-console to exit");
});
