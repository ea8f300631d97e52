import { test } from "node:test";
import assert from "node:assert/strict";
import { nanoTimestamp } from "../../src/core/timestamp.js";

test("event timestamps: RFC 3339 with nanoseconds, strictly increasing, near the wall clock", () => {
  const stamps = Array.from({ length: 1000 }, () => nanoTimestamp());
  for (const s of stamps) assert.match(s, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i - 1]! < stamps[i]!, `${stamps[i - 1]} < ${stamps[i]}`);
  assert.ok(Math.abs(Date.parse(stamps[0]!) - Date.now()) < 5000);
});
