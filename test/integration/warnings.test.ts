// The warnings service through the API, in LXD's shape: a warning the daemon raises is listed
// (URLs, recursion), shown, counted when raised again, acknowledged, and deleted — through the
// REST API and through the real `lxc warning` client.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Event } from "../../src/api/event.js";
import type { Warning } from "../../src/api/warning.js";
import { inProcessDaemon } from "../helpers/daemon.js";

const TYPE = "Lodge test warning";

test("warnings: raised by the daemon, listed and shown as LXD does, counted, acknowledged and deleted", async (t) => {
  const { d, client, lxc } = await inProcessDaemon(t);
  const actions: string[] = [];
  let waiting: { action: string; resolve: () => void } | undefined;
  const sub = await client.events((e: Event) => {
    const { action } = e.metadata as { action: string };
    actions.push(action);
    if (waiting?.action === action) waiting.resolve();
  }, { types: ["lifecycle"] });
  t.after(() => sub.close());
  const lifecycle = (action: string) =>
    actions.includes(action) ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { action, resolve }));

  const raised = await d.warnings.raise(TYPE, "first time", { severity: "moderate" });
  await lifecycle("warning-created");
  const url = `/1.0/warnings/${raised.uuid}`;
  assert.ok((await client.get<string[]>("/1.0/warnings")).includes(url), "listed by URL");
  const mine = (await client.get<Warning[]>("/1.0/warnings?recursion=1")).filter((w) => w.type === TYPE);
  assert.equal(mine.length, 1);
  const w = mine[0]!;
  // Every field of LXD's Warning, with these values.
  assert.deepEqual(Object.keys(w).sort(), ["count", "entity_url", "first_seen_at", "last_message", "last_seen_at", "location", "project", "severity", "status", "type", "uuid"]);
  assert.equal(w.uuid, raised.uuid);
  assert.equal(w.count, 1);
  assert.equal(w.status, "new");
  assert.equal(w.severity, "moderate");
  assert.equal(w.last_message, "first time");
  assert.ok(!Number.isNaN(Date.parse(w.first_seen_at)) && w.first_seen_at === w.last_seen_at);
  assert.deepEqual(await client.get<Warning>(url), w);

  // Raised again: the same warning, counted, with the latest message.
  await d.warnings.raise(TYPE, "second time", { severity: "moderate" });
  await lifecycle("warning-updated");
  const again = await client.get<Warning>(url);
  assert.equal(again.count, 2);
  assert.equal(again.last_message, "second time");
  assert.ok(again.last_seen_at >= again.first_seen_at);
  assert.equal((await client.get<Warning[]>("/1.0/warnings?recursion=1")).filter((x) => x.type === TYPE).length, 1);

  // The real client lists, shows and acknowledges it.
  const listed = await lxc(["warning", "list", "--format", "csv", "--all"]);
  assert.match(listed.stdout, new RegExp(`${raised.uuid.slice(0, 8)}.*${TYPE}`), listed.stdout);
  assert.match((await lxc(["warning", "show", raised.uuid])).stdout, /last_message: second time/);
  await lxc(["warning", "acknowledge", raised.uuid]);
  assert.equal((await client.get<Warning>(url)).status, "acknowledged");
  await lifecycle("warning-acknowledged");
  // An acknowledged warning raised again stays acknowledged (it is counted, not reopened).
  await d.warnings.raise(TYPE, "third time");
  assert.deepEqual([(await client.get<Warning>(url)).status, (await client.get<Warning>(url)).count], ["acknowledged", 3]);

  // Back to new through PUT; a bad status is refused and changes nothing.
  await client.put(url, { status: "new" });
  assert.equal((await client.get<Warning>(url)).status, "new");
  const bad = await client.raw("PUT", url, { status: "snoozed" });
  assert.equal(bad.status, 400);
  assert.equal((await client.get<Warning>(url)).status, "new");

  // Deleted: gone from the list, 404 after, and a second delete is a 404 too.
  await lxc(["warning", "delete", raised.uuid]);
  await lifecycle("warning-deleted");
  assert.ok(!(await client.get<string[]>("/1.0/warnings")).includes(url));
  assert.equal((await client.raw("GET", url)).status, 404);
  assert.equal((await client.raw("DELETE", url)).status, 404);
  assert.equal((await client.raw("PUT", url, { status: "acknowledged" })).status, 404);
});
