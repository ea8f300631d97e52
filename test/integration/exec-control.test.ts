// The exec control socket into a real container, over LXD's websocket protocol: a
// window-resize reaches the command's terminal (its shell sees SIGWINCH and the new size), and
// signals reach the command, interactive or not.
import { test } from "node:test";
import assert from "node:assert/strict";
import type WebSocket from "ws";
import type { Operation } from "../../src/api/operation.js";
import { TestDaemon } from "../helpers/daemon.js";
import { busyboxImage } from "../helpers/busybox-image.js";

interface Session {
  op: Operation;
  socks: Record<string, WebSocket>;
  /** Resolves with all output so far once it matches re. */
  until(re: RegExp): Promise<string>;
  control(msg: unknown): void;
}

async function exec(d: TestDaemon, name: string, command: string[], opts: { interactive: boolean; width?: number; height?: number }): Promise<Session> {
  const op = await d.client.post<Operation>(`/1.0/instances/${name}/exec`, {
    command,
    environment: { PATH: "/bin:/sbin:/usr/bin", TERM: "xterm" },
    interactive: opts.interactive,
    "wait-for-websocket": true,
    width: opts.width ?? 0,
    height: opts.height ?? 0,
  });
  const fds = (op.metadata as { fds: Record<string, string> }).fds;
  const socks: Record<string, WebSocket> = {};
  // Paused until the output handler is on: the command starts as soon as its streams connect.
  for (const fd of Object.keys(fds)) socks[fd] = await d.client.websocket(`/1.0/operations/${op.id}/websocket?secret=${fds[fd]}`, { paused: true });
  let out = "";
  const waiters: (() => void)[] = [];
  const outSock = opts.interactive ? socks["0"]! : socks["1"]!;
  outSock.on("message", (m: Buffer) => {
    out += m.toString();
    for (const w of waiters.splice(0)) w();
  });
  // Fails (rather than hangs) when the output never comes: it is waited for, not slept on.
  for (const ws of Object.values(socks)) ws.resume();
  const until = async (re: RegExp, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(out)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no output matching ${re} within ${timeoutMs} ms; got: ${JSON.stringify(out)}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        waiters.push(() => (clearTimeout(timer), r()));
      });
    }
    return out;
  };
  return { op, socks, until, control: (msg) => socks.control!.send(JSON.stringify(msg)) };
}

test("exec control into a container: window-resize reaches the pty, signals reach the command", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  await d.lxc(["launch", "bb", "c1"]);
  t.after(() => d.lxc(["delete", "--force", "c1"], { allowFail: true }));

  // Interactive: a terminal of the asked size; the shell reports each SIGWINCH with the new size.
  const script = 'trap \'echo "winch $(stty size)"\' WINCH; trap \'echo got-usr1\' USR1; echo "ready $(stty size)"; while :; do sleep 0.05; done';
  const s = await exec(d, "c1", ["sh", "-c", script], { interactive: true, width: 80, height: 24 });
  assert.match(await s.until(/ready \d+ \d+/), /ready 24 80/);
  s.control({ command: "window-resize", args: { width: "132", height: "40" } });
  assert.match(await s.until(/winch \d+ \d+/), /winch 40 132/);
  s.control({ command: "signal", signal: 10 }); // SIGUSR1
  await s.until(/got-usr1/);
  s.control({ command: "signal", signal: 15 }); // SIGTERM: no trap, the shell ends by it
  assert.equal((await d.client.wait(s.op.id, 20)).metadata?.return, 143);

  // Not interactive: the signal reaches the command too.
  const n = await exec(d, "c1", ["sh", "-c", "echo ready; exec sleep 30"], { interactive: false });
  await n.until(/ready/);
  n.control({ command: "signal", signal: 9 });
  assert.equal((await d.client.wait(n.op.id, 20)).metadata?.return, 137);
  assert.equal((await d.lxc(["exec", "c1", "--", "echo", "still fine"])).stdout, "still fine\n");
});
