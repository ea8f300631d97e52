import { test } from "node:test";
import assert from "node:assert/strict";
import { nicVolatileChanges, withNicVolatile, withoutHostNames } from "../../src/instances/devices/nic.js";

const RUN = { running: true };
const br = (extra: Record<string, string> = {}) => ({ type: "nic", nictype: "bridged", parent: "br0", ...extra });

test("nic volatile keys: made for NICs that set no hwaddr/host_name, kept once made", () => {
  const c1 = withNicVolatile({ "user.x": "1" }, { eth0: br(), root: { type: "disk", path: "/", pool: "default" } }, RUN);
  assert.match(c1["volatile.eth0.hwaddr"]!, /^00:16:3e(:[0-9a-f]{2}){3}$/);
  assert.match(c1["volatile.eth0.host_name"]!, /^veth[0-9a-f]{8}$/);
  assert.equal(c1["user.x"], "1");
  assert.deepEqual(Object.keys(c1).sort(), ["user.x", "volatile.eth0.host_name", "volatile.eth0.hwaddr"]);
  // Again: nothing changes (the same object back).
  assert.deepEqual(nicVolatileChanges(c1, { eth0: br() }, RUN), {});
  assert.equal(withNicVolatile(c1, { eth0: br() }, RUN), c1);
  // Two NICs get different MACs.
  const c2 = withNicVolatile(c1, { eth0: br(), eth1: br({ name: "eth1" }) }, RUN);
  assert.equal(c2["volatile.eth0.hwaddr"], c1["volatile.eth0.hwaddr"]);
  assert.notEqual(c2["volatile.eth1.hwaddr"], c2["volatile.eth0.hwaddr"]);
});

test("nic volatile keys: a device's own hwaddr/host_name wins; keys of gone devices are dropped", () => {
  const c = { "volatile.eth0.hwaddr": "00:16:3e:00:00:01", "volatile.eth0.host_name": "vethaaaaaaaa", "volatile.eth1.hwaddr": "00:16:3e:00:00:02", "volatile.uuid": "u" };
  const changes = nicVolatileChanges(c, { eth0: br({ hwaddr: "00:16:3e:aa:bb:cc", host_name: "mine0" }) }, RUN);
  assert.deepEqual(changes, { "volatile.eth0.hwaddr": "", "volatile.eth0.host_name": "", "volatile.eth1.hwaddr": "" });
  assert.deepEqual(withNicVolatile(c, { eth0: br({ hwaddr: "00:16:3e:aa:bb:cc", host_name: "mine0" }) }, RUN), { "volatile.uuid": "u" });
  // A device that is no longer a NIC loses its keys too.
  assert.deepEqual(nicVolatileChanges({ "volatile.eth0.hwaddr": "00:16:3e:00:00:01" }, { eth0: { type: "none" } }, RUN), { "volatile.eth0.hwaddr": "" });
});

test("nic volatile keys: a stopped instance gets its MAC but no host-side name; stopping drops the names", () => {
  const stopped = withNicVolatile({}, { eth0: br() }, { running: false });
  assert.deepEqual(Object.keys(stopped), ["volatile.eth0.hwaddr"]);
  const running = withNicVolatile(stopped, { eth0: br() }, RUN);
  assert.match(running["volatile.eth0.host_name"]!, /^veth[0-9a-f]{8}$/);
  assert.equal(running["volatile.eth0.hwaddr"], stopped["volatile.eth0.hwaddr"]);
  assert.deepEqual(withoutHostNames({ ...running, "volatile.uuid": "u" }), { "volatile.eth0.hwaddr": stopped["volatile.eth0.hwaddr"], "volatile.uuid": "u" });
  assert.equal(withoutHostNames(stopped), stopped, "nothing to drop: the same object");
});

test("nic volatile keys: a VM's NIC gets a tap's name, as LXD names it", () => {
  const vm = withNicVolatile({}, { eth0: br() }, { running: true, kind: "tap" });
  assert.match(vm["volatile.eth0.host_name"]!, /^tap[0-9a-f]{8}$/);
});
