import test from "node:test";
import assert from "node:assert/strict";
import type { Event } from "../../src/api/event.js";
import type { Operation } from "../../src/api/operation.js";
import { ProgressRenderer, progressText, waitWithProgress } from "../../src/cli/progress.js";

test("progress is read from metadata keys ending in _progress", () => {
  assert.equal(progressText(null), undefined);
  assert.equal(progressText({ fingerprint: "abc" }), undefined);
  assert.equal(progressText({ download_progress: "45% (12.3MB/s)", x: 1 }), "Download: 45% (12.3MB/s)");
  assert.equal(progressText({ fs_progress: "10%", create_instance_from_image_unpack_progress: "Unpack: 80%" }),
    "Create instance from image unpack: Unpack: 80%, Fs: 10%");
  assert.equal(progressText({ download_progress: "45%" }, "Retrieving image"), "Retrieving image: 45%");
});

/** A terminal stand-in that records what was written. */
function fakeTty(columns = 40) {
  const writes: string[] = [];
  return { writes, stream: { isTTY: true, columns, write: (s: string) => (writes.push(s), true) } as never };
}

test("on a terminal the line is rewritten in place, then wiped", () => {
  const t = fakeTty();
  const r = new ProgressRenderer({ stream: t.stream });
  r.update({ download_progress: "10%" });
  r.update({ download_progress: "10%" }); // unchanged: nothing written
  r.update({ download_progress: "20%" });
  r.update({ other: "no progress here" });
  r.done();
  assert.deepEqual(t.writes, ["\r\x1b[KDownload: 10%", "\r\x1b[KDownload: 20%", "\r\x1b[K"]);
});

test("a line wider than the terminal is cut, so \\r can redraw it", () => {
  const t = fakeTty(20);
  const r = new ProgressRenderer({ stream: t.stream });
  r.update({ download_progress: "x".repeat(50) });
  assert.equal(t.writes[0], "\r\x1b[K" + "Download: xxxxxxxx…");
});

test("nothing is written when the stream is not a terminal", () => {
  const writes: string[] = [];
  const r = new ProgressRenderer({ stream: { isTTY: false, write: (s: string) => (writes.push(s), true) } as never });
  r.update({ download_progress: "10%" });
  r.done();
  assert.deepEqual(writes, []);
});

function op(id: string, status_code: number, metadata: Record<string, unknown> | null = null, err = ""): Operation {
  const status = { 103: "Running", 200: "Success", 400: "Failure", 401: "Cancelled" }[status_code] ?? "Pending";
  return { id, class: "task", description: "Downloading image", created_at: "", updated_at: "", status, status_code, resources: null, metadata, may_cancel: false, err, location: "none" };
}

/** A client whose event stream is driven by the test; records the order of calls. */
function fakeClient() {
  const calls: string[] = [];
  let emit: (e: Event) => void = () => {};
  let closeStream: () => void = () => {};
  const client = {
    events: async (onEvent: (e: Event) => void) => {
      calls.push("events");
      emit = onEvent;
      const closed = new Promise<void>((r) => (closeStream = r));
      return { close: () => calls.push("close"), closed };
    },
    get: async <T>(path: string): Promise<T> => {
      calls.push(`get ${path}`);
      return op("op1", 200, { from: "wait" }) as T;
    },
  };
  const send = (o: Operation) => emit({ type: "operation", timestamp: "", metadata: o, location: "none", project: "default" });
  return { client, calls, send, endStream: () => closeStream() };
}

test("waiting opens the event stream before the request and feeds the renderer", async () => {
  const f = fakeClient();
  const t = fakeTty();
  const done = waitWithProgress(
    f.client,
    async () => {
      f.calls.push("request");
      return op("op1", 105);
    },
    { stream: t.stream },
  );
  await new Promise((r) => setImmediate(r));
  f.send(op("other", 103, { download_progress: "99%" })); // someone else's operation
  f.send(op("op1", 103, { download_progress: "50%" }));
  f.send(op("op1", 200, { fingerprint: "abc" }));
  const result = await done;
  assert.deepEqual(result.metadata, { fingerprint: "abc" });
  assert.deepEqual(f.calls, ["events", "request", "close"]);
  assert.deepEqual(t.writes, ["\r\x1b[KDownload: 50%", "\r\x1b[K"]);
});

test("events that arrive before the request returns are not lost", async () => {
  const f = fakeClient();
  const result = await waitWithProgress(f.client, async () => {
    // The operation finishes (and says so) before its creation is even answered.
    f.send(op("op1", 103));
    f.send(op("op1", 200, { done: true }));
    return op("op1", 105);
  });
  assert.deepEqual(result.metadata, { done: true });
});

test("a failed operation rejects with its error", async () => {
  const f = fakeClient();
  const done = waitWithProgress(f.client, async () => op("op1", 105));
  await new Promise((r) => setImmediate(r));
  f.send(op("op1", 400, null, 'Image "nope" not found'));
  await assert.rejects(done, /Image "nope" not found/);
});

test("when the event stream ends early the server is asked to wait instead", async () => {
  const f = fakeClient();
  const done = waitWithProgress(f.client, async () => op("op1", 105));
  await new Promise((r) => setImmediate(r));
  f.endStream();
  assert.deepEqual((await done).metadata, { from: "wait" });
  assert.ok(f.calls.includes("get /1.0/operations/op1/wait?timeout=-1"));
});

test("an answer with nothing to wait for resolves null", async () => {
  const f = fakeClient();
  assert.equal(await waitWithProgress(f.client, async () => null), null);
  assert.deepEqual(f.calls, ["events", "close"]);
});
