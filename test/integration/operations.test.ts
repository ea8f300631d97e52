import test from "node:test";
import assert from "node:assert/strict";
import { inProcessDaemon as daemon } from "../helpers/daemon.js";
import type { LodgeClient } from "../../src/client/client.js";
import type { Event } from "../../src/api/event.js";
import type { Operation } from "../../src/api/operation.js";

// The operations machinery is exercised in-process so a test can create operations with any
// body; everything a client sees still goes through the real socket, HTTP and websockets.

/** Collects operation events for one operation until it reaches a final state. */
async function watch(client: LodgeClient) {
  const seen: Event<Operation>[] = [];
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const sub = await client.events(
    (e) => {
      seen.push(e as Event<Operation>);
      if ([200, 400, 401].includes((e.metadata as Operation).status_code)) finished();
    },
    { types: ["operation"] },
  );
  return {
    seen,
    done: async () => {
      await done;
      sub.close();
      return seen;
    },
  };
}

test("an operation's every state change reaches /1.0/events in order, with progress", async (t) => {
  const { d, client } = await daemon(t);
  const w = await watch(client);
  const op = d.operations.create({
    description: "Importing image",
    resources: { images: ["/1.0/images/abc"] },
    run: async (ctx) => {
      for (const pct of [25, 50, 100]) {
        await new Promise((r) => setTimeout(r, 5));
        ctx.updateMetadata({ download_progress: `${pct}%` });
      }
      return { fingerprint: "abc" };
    },
  });
  const events = await w.done();
  assert.ok(events.every((e) => e.type === "operation" && e.metadata.id === op.id));
  assert.deepEqual(
    events.map((e) => e.metadata.status),
    ["Pending", "Running", "Running", "Running", "Running", "Success"],
  );
  assert.deepEqual(
    events.slice(2, 5).map((e) => e.metadata.metadata?.download_progress),
    ["25%", "50%", "100%"],
  );
  const last = events.at(-1)!.metadata;
  assert.equal(last.metadata?.fingerprint, "abc");
  assert.deepEqual(last.resources, { images: ["/1.0/images/abc"] });
  // The finished operation stays readable for clients that come late.
  assert.equal((await client.get<Operation>(`/1.0/operations/${op.id}`)).status, "Success");
});

test("a failing operation ends in Failure with its error, seen by events and /wait", async (t) => {
  const { d, client } = await daemon(t);
  const w = await watch(client);
  const op = d.operations.create({
    description: "Doomed",
    run: async () => {
      throw new Error("disk on fire");
    },
  });
  const waited = await client.get<Operation>(`/1.0/operations/${op.id}/wait?timeout=10`);
  assert.equal(waited.status_code, 400);
  assert.equal(waited.err, "disk on fire");
  const events = await w.done();
  assert.deepEqual(
    events.map((e) => e.metadata.status),
    ["Pending", "Running", "Failure"],
  );
  await assert.rejects(client.wait(op.id), /disk on fire/);
});

test("DELETE cancels a running operation; its body sees the abort; events say Cancelling then Cancelled", async (t) => {
  const { d, client } = await daemon(t);
  const w = await watch(client);
  let sawAbort = false;
  const op = d.operations.create({
    description: "Long work",
    cancellable: true,
    run: (ctx) =>
      new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => {
          sawAbort = true;
          reject(new Error("stopped"));
        }),
      ),
  });
  const listed = await client.get<Record<string, Operation[]>>("/1.0/operations?recursion=1");
  assert.equal(listed.running?.[0]?.id, op.id);
  assert.equal(listed.running?.[0]?.may_cancel, true);
  await client.delete(`/1.0/operations/${op.id}`);
  const events = await w.done();
  assert.ok(sawAbort);
  assert.deepEqual(
    events.map((e) => e.metadata.status),
    ["Pending", "Running", "Cancelling", "Cancelled"],
  );
  assert.equal((await client.get<Operation>(`/1.0/operations/${op.id}`)).status_code, 401);
  const again = await client.raw("DELETE", `/1.0/operations/${op.id}`);
  assert.equal(again.status, 400);
});

test("an operation that cannot be cancelled says so; /wait?timeout returns it still running", async (t) => {
  const { d, client } = await daemon(t);
  let finish!: () => void;
  let running!: () => void;
  const runningP = new Promise<void>((r) => (running = r));
  const op = d.operations.create({
    description: "Not cancellable",
    run: () => {
      running();
      return new Promise<void>((r) => (finish = r));
    },
  });
  await runningP;
  const refused = await client.raw("DELETE", `/1.0/operations/${op.id}`);
  assert.equal(refused.status, 403);
  assert.match(refused.body.type === "error" ? refused.body.error : "", /cannot be cancelled/);
  const t0 = Date.now();
  const waited = await client.get<Operation>(`/1.0/operations/${op.id}/wait?timeout=0.2`);
  assert.ok(Date.now() - t0 >= 150);
  assert.equal(waited.status, "Running");
  finish();
  assert.equal((await client.wait(op.id, 10)).status, "Success");
  const missing = await client.raw("GET", "/1.0/operations/00000000-0000-0000-0000-000000000000");
  assert.equal(missing.status, 404);
});

test("event type filters: a lifecycle-only listener gets no operation events; bad types are refused", async (t) => {
  const { d, client } = await daemon(t);
  const got: Event[] = [];
  let updated!: () => void;
  const updatedP = new Promise<void>((r) => (updated = r));
  const sub = await client.events(
    (e) => {
      got.push(e);
      if ((e.metadata as { action?: string }).action === "config-updated") updated();
    },
    { types: ["lifecycle"] },
  );
  const op = d.operations.create({ description: "quiet", run: async () => {} });
  await client.wait(op.id, 10);
  await client.patch("/1.0", { config: { "user.x": "1" } });
  // Events reach a listener in the order they happened: once the config change is in, any
  // event of the earlier operation would have come before it.
  await updatedP;
  sub.close();
  assert.deepEqual(
    got.map((e) => [e.type, (e.metadata as { action: string }).action]),
    [["lifecycle", "config-updated"]],
  );
  await assert.rejects(client.events(() => {}, { types: ["bogus" as "logging"] }), /Unknown event type "bogus"/);
});

test("logging events carry daemon log records", async (t) => {
  const { d, client } = await daemon(t);
  const got: Event<{ message: string; level: string }>[] = [];
  let arrived!: () => void;
  const arrivedP = new Promise<void>((r) => (arrived = r));
  const sub = await client.events(
    (e) => {
      got.push(e as Event<{ message: string; level: string }>);
      if ((e.metadata as { message?: string }).message === "hello from the daemon") arrived();
    },
    { types: ["logging"] },
  );
  d.log.info("hello from the daemon", { secret_token: "hunter2" });
  await arrivedP;
  sub.close();
  const mine = got.find((e) => e.metadata.message === "hello from the daemon");
  assert.ok(mine);
  assert.equal(mine.metadata.level, "info");
  assert.doesNotMatch(JSON.stringify(mine), /hunter2/, "secrets never leave the daemon");
});
