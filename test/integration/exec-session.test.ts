import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type WebSocket from "ws";
import { execOperation } from "../../src/instances/exec/session.js";
import type { ExecProcess } from "../../src/instances/driver.js";
import type { Operation } from "../../src/api/operation.js";
import { inProcessDaemon } from "../helpers/daemon.js";

// LXD's exec websocket protocol, end to end over the daemon's real socket, with a real host
// process standing where the container's command will be (the driver supplies that part).
function hostProcess(argv: string[]): ExecProcess {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  return {
    pid: child.pid!,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited: new Promise((r) => child.on("exit", (code, sig) => r({ code: code ?? 128 + (sig === "SIGTERM" ? 15 : 9) }))),
    signal: (s) => void child.kill(s),
    resize: async () => {},
  };
}

/** Reads a stream socket until its end-of-stream barrier (an empty text message). */
function collect(ws: WebSocket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    ws.on("message", (data, isBinary) => {
      if (!isBinary) resolve(Buffer.concat(parts));
      else parts.push(data as Buffer);
    });
    ws.on("close", () => resolve(Buffer.concat(parts)));
  });
}

test("exec over websockets: stdin in, stdout and stderr apart, exit code in metadata", async (t) => {
  const { d, client } = await inProcessDaemon(t);
  const spec = execOperation({ interactive: false, waitForWebsocket: true, recordOutput: false }, async () =>
    hostProcess(["sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3"]),
  );
  const op = d.operations.create({ description: "Executing command", ...spec });
  const fds = (op.metadata as { fds: Record<string, string> }).fds;
  assert.deepEqual(Object.keys(fds).sort(), ["0", "1", "2", "control"]);
  const ws = async (fd: string) => client.websocket(`/1.0/operations/${op.id}/websocket?secret=${fds[fd]}`);
  const control = await ws("control");
  const stdin = await ws("0");
  const stdout = await ws("1");
  const stderr = await ws("2");
  const out = collect(stdout);
  const err = collect(stderr);
  stdin.send(Buffer.from("hello lodge\n"), { binary: true });
  stdin.send("", { binary: false }); // end of input
  assert.equal((await out).toString(), "HELLO LODGE\n");
  assert.equal((await err).toString(), "oops\n");
  const done = await client.wait(op.id, 10);
  assert.equal(done.metadata?.return, 3);
  control.close();
});

test("a wrong secret is refused and the operation still runs for the right ones", async (t) => {
  const { d, client } = await inProcessDaemon(t);
  const spec = execOperation({ interactive: false, waitForWebsocket: true, recordOutput: false }, async () =>
    hostProcess(["true"]),
  );
  const op = d.operations.create({ description: "Executing command", ...spec });
  const bad = await client.websocket(`/1.0/operations/${op.id}/websocket?secret=nope`);
  const closed = await new Promise<number>((r) => bad.on("close", (code) => r(code)));
  assert.equal(closed, 1008);
  const fds = (op.metadata as { fds: Record<string, string> }).fds;
  for (const fd of ["control", "0", "1", "2"]) await client.websocket(`/1.0/operations/${op.id}/websocket?secret=${fds[fd]}`);
  assert.equal((await client.wait(op.id, 10)).metadata?.return, 0);
});

test("a signal sent on the control socket reaches the command", async (t) => {
  const { d, client } = await inProcessDaemon(t);
  const spec = execOperation({ interactive: false, waitForWebsocket: true, recordOutput: false }, async () =>
    hostProcess(["sh", "-c", "echo ready; exec sleep 30"]),
  );
  const op = d.operations.create({ description: "Executing command", ...spec });
  const fds = (op.metadata as { fds: Record<string, string> }).fds;
  const socks: Record<string, WebSocket> = {};
  for (const fd of ["control", "0", "1", "2"])
    socks[fd] = await client.websocket(`/1.0/operations/${op.id}/websocket?secret=${fds[fd]}`);
  // The command is running (its output reaches us) before the signal goes: the signal is
  // applied to a live process, not queued for one about to start.
  let out = "";
  await new Promise<void>((r) => socks["1"]!.on("message", (m: Buffer) => (out += m.toString()).includes("ready") && r()));
  socks.control!.send(JSON.stringify({ command: "signal", signal: 15 }));
  const done = await client.wait(op.id, 10);
  assert.equal(done.metadata?.return, 143);
});

test("without websockets, record-output keeps stdout and stderr as log files", async (t) => {
  const { d, client, dir } = await inProcessDaemon(t);
  const spec = execOperation(
    { interactive: false, waitForWebsocket: false, recordOutput: true, record: { dir, apiPrefix: "/1.0/instances/c1/logs" } },
    async () => hostProcess(["sh", "-c", "echo out; echo err >&2"]),
  );
  const op = d.operations.create({ description: "Executing command", ...spec });
  const done: Operation = await client.wait(op.id, 10);
  const output = done.metadata?.output as Record<string, string>;
  assert.match(output["1"]!, /^\/1\.0\/instances\/c1\/logs\/exec_[0-9a-f]+\.stdout$/);
  const { readFile } = await import("node:fs/promises");
  assert.equal(await readFile(`${dir}/${output["1"]!.split("/").pop()}`, "utf8"), "out\n");
  assert.equal(await readFile(`${dir}/${output["2"]!.split("/").pop()}`, "utf8"), "err\n");
  assert.equal(done.metadata?.return, 0);
});

test("the command starts once the stream sockets are connected, without a control socket", async (t) => {
  const { d, client } = await inProcessDaemon(t);
  const spec = execOperation({ interactive: false, waitForWebsocket: true, recordOutput: false }, async () =>
    hostProcess(["sh", "-c", "echo ran"]),
  );
  const op = d.operations.create({ description: "Executing command", ...spec });
  const fds = (op.metadata as { fds: Record<string, string> }).fds;
  const ws = async (fd: string) => client.websocket(`/1.0/operations/${op.id}/websocket?secret=${fds[fd]}`);
  const stdin = await ws("0");
  const out = collect(await ws("1"));
  await ws("2");
  stdin.send("", { binary: false });
  assert.equal((await out).toString(), "ran\n");
  assert.equal((await client.wait(op.id, 10)).metadata?.return, 0);
});
