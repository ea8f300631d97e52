import test from "node:test";
import assert from "node:assert/strict";
import { due, parseSchedule } from "../../src/instances/snapshots/cron.js";
import { expiryFrom, goDate, nextSnapshotName } from "../../src/instances/snapshots/naming.js";
import { validateInstanceConfig } from "../../src/instances/config/keys.js";

const at = (iso: string) => new Date(iso);

test("cron: fields, lists, ranges, steps, and LXD's aliases", () => {
  const s = parseSchedule("*/15 6-8 * * 1-5");
  assert.ok(due(s, at("2026-12-07T06:15:00Z"))); // a Monday
  assert.ok(!due(s, at("2026-12-07T06:16:00Z")));
  assert.ok(!due(s, at("2026-12-06T06:15:00Z"))); // Sunday
  assert.ok(due(parseSchedule("@hourly"), at("2026-12-07T13:00:30Z")));
  assert.ok(!due(parseSchedule("@hourly"), at("2026-12-07T13:01:00Z")));
  assert.ok(due(parseSchedule("@daily, @weekly"), at("2026-12-07T00:00:00Z")));
  assert.ok(due(parseSchedule("@monthly"), at("2026-12-01T00:00:00Z")));
  assert.ok(due(parseSchedule("@yearly"), at("2027-01-01T00:00:00Z")));
  assert.ok(due(parseSchedule("0 0 * * 7"), at("2026-12-06T00:00:00Z")), "7 is Sunday too");
  assert.ok(due(parseSchedule("0 6 * * *, 0 18 * * *"), at("2026-12-07T18:00:00Z")));
  for (const bad of ["* * *", "61 * * * *", "@often", "a b c d e"]) assert.throws(() => parseSchedule(bad), Error, bad);
});

test("names: %d counts on from the highest, a taken fixed name gets -n, dates in Go's layout", () => {
  assert.equal(nextSnapshotName(undefined, []), "snap0");
  assert.equal(nextSnapshotName("", ["snap0", "snap4", "other"]), "snap5");
  assert.equal(nextSnapshotName("backup", []), "backup");
  assert.equal(nextSnapshotName("backup", ["backup"]), "backup-0");
  assert.equal(nextSnapshotName("backup", ["backup", "backup-0"]), "backup-1");
  const now = at("2026-03-04T05:06:07Z");
  assert.equal(nextSnapshotName("{{ creation_date|date:'2006-01-02_15-04-05' }}", [], now), "2026-03-04_05-06-07");
  assert.equal(nextSnapshotName('auto-{{creation_date|date:"2006-01-02"}}-%d', ["auto-2026-03-04-0"], now), "auto-2026-03-04-1");
  assert.equal(goDate(now, "Mon Jan 02 15:04:05 2006"), "Wed Mar 04 05:06:07 2026");
  assert.throws(() => nextSnapshotName("%d-%d", []));
});

test("expiry: LXD's units (M minutes, H, d, w, m months, y)", () => {
  const now = at("2026-01-31T00:00:00Z");
  assert.equal(expiryFrom("", now), undefined);
  assert.equal(expiryFrom("30M", now)!.toISOString(), "2026-01-31T00:30:00.000Z");
  assert.equal(expiryFrom("1d 2H", now)!.toISOString(), "2026-02-01T02:00:00.000Z");
  assert.equal(expiryFrom("2w", now)!.toISOString(), "2026-02-14T00:00:00.000Z");
  assert.equal(expiryFrom("1y", now)!.toISOString(), "2027-01-31T00:00:00.000Z");
  assert.throws(() => expiryFrom("3 days", now));
});

test("the snapshots.* keys are instance config, checked", () => {
  assert.deepEqual(validateInstanceConfig({ "snapshots.schedule": "@daily", "snapshots.expiry": "1w", "snapshots.pattern": "s%d", "snapshots.schedule.stopped": "true" }), {
    "snapshots.schedule": "@daily",
    "snapshots.expiry": "1w",
    "snapshots.pattern": "s%d",
    "snapshots.schedule.stopped": "true",
  });
  assert.throws(() => validateInstanceConfig({ "snapshots.schedule": "every day" }), /snapshots.schedule/);
  assert.throws(() => validateInstanceConfig({ "snapshots.expiry": "soon" }), /snapshots.expiry/);
});
