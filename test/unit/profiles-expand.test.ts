import test from "node:test";
import assert from "node:assert/strict";
import { expandConfig, expandDevices } from "../../src/instances/expand.js";
import { checkExpansion } from "../../src/instances/expansion.js";
import type { InstanceRecord } from "../../src/instances/record.js";
import type { ProfileLayer } from "../../src/profiles/record.js";

// Profile expansion: profiles in order (a later one overrides an earlier one), the instance's
// own config and devices over all of them; what an expansion may not become.

const layers: ProfileLayer[] = [
  { name: "default", config: {}, devices: { root: { type: "disk", path: "/", pool: "default" } } },
  { name: "a", config: { "user.x": "a", "user.y": "a" }, devices: { d: { type: "disk", source: "/srv/a", path: "/mnt/a" } } },
  { name: "b", config: { "user.y": "b", "user.z": "b" }, devices: { d: { type: "disk", source: "/srv/b", path: "/mnt/b" } } },
];

const record = (over: Partial<InstanceRecord> = {}): InstanceRecord => ({
  name: "c1",
  project: "default",
  type: "container",
  architecture: "x86_64",
  description: "",
  config: {},
  devices: {},
  profiles: layers.map((l) => l.name),
  ephemeral: false,
  stateful: false,
  created_at: "",
  last_used_at: "",
  pool: "default",
  phase: "ready",
  ...over,
});

test("later profiles override earlier ones, the instance overrides all, key by key and device by device", () => {
  const r = record({ config: { "user.z": "own" }, devices: { e: { type: "none" } } });
  assert.deepEqual(expandConfig(r, layers), { "user.x": "a", "user.y": "b", "user.z": "own" });
  assert.deepEqual(expandDevices(r, layers), {
    root: { type: "disk", path: "/", pool: "default" },
    d: { type: "disk", source: "/srv/b", path: "/mnt/b" },
    e: { type: "none" },
  });
  assert.deepEqual(expandConfig(r, []), { "user.z": "own" });
  // The expansion is a copy: changing it changes no profile.
  expandDevices(r, layers).root!.pool = "other";
  assert.equal(layers[0]!.devices.root!.pool, "default");
});

test("an expansion without a root disk, with clashing paths, or changing the id map while running is refused", () => {
  const r = record();
  assert.throws(() => checkExpansion({ before: r, beforeLayers: layers, after: r, afterLayers: layers.slice(1), running: false }), /no root device/);
  const clash = [...layers, { name: "c", config: {}, devices: { other: { type: "disk", source: "/srv/c", path: "/mnt/b" } } }];
  assert.throws(() => checkExpansion({ before: r, beforeLayers: layers, after: r, afterLayers: clash, running: false }), /Instance "c1": Devices "d" and "other" both use path "\/mnt\/b"/);
  const privileged = [...layers, { name: "p", config: { "security.privileged": "true" }, devices: {} }];
  assert.throws(() => checkExpansion({ before: r, beforeLayers: layers, after: r, afterLayers: privileged, running: true }), /"security.privileged" can only be changed while the instance is stopped/);
  assert.equal(checkExpansion({ before: r, beforeLayers: layers, after: r, afterLayers: privileged, running: false }).name, "c1");
});
