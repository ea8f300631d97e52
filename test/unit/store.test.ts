import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SqliteStore } from "../../src/state/sqlite.js";
import { RevisionConflict } from "../../src/state/store.js";
import { migrate } from "../../src/state/migrations.js";

async function tempStore(t: test.TestContext) {
  const dir = await mkdtemp(join(tmpdir(), "lodge-store-"));
  const path = join(dir, "lodge.db");
  const store = SqliteStore.open(path);
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, path, dir };
}

test("put, get, list by prefix and delete", async (t) => {
  const { store } = await tempStore(t);
  const r1 = await store.put("instances/default/a", { name: "a" });
  const r2 = await store.put("instances/default/b", { name: "b" });
  await store.put("instancesX/other", { name: "x" });
  assert.ok(r2 > r1);
  assert.deepEqual((await store.get("instances/default/a"))?.value, { name: "a" });
  const listed = await store.list("instances/");
  assert.deepEqual(
    listed.map((d) => d.key),
    ["instances/default/a", "instances/default/b"],
  );
  assert.equal(await store.delete("instances/default/a"), true);
  assert.equal(await store.delete("instances/default/a"), false);
  assert.equal(await store.get("instances/default/a"), undefined);
  assert.equal(await store.revision(), r2 + 2);
});

test("compare-and-swap refuses a stale revision", async (t) => {
  const { store } = await tempStore(t);
  const rev = await store.put("k", 1, { revision: 0 });
  await assert.rejects(store.put("k", 2, { revision: 0 }), RevisionConflict);
  await store.put("k", 2, { revision: rev });
  await assert.rejects(store.put("k", 3, { revision: rev }), RevisionConflict);
  await assert.rejects(store.delete("k", { revision: rev }), RevisionConflict);
  assert.equal((await store.get("k"))?.value, 2);
});

test("a transaction commits all its writes or none", async (t) => {
  const { store } = await tempStore(t);
  await store.put("a", 1);
  await assert.rejects(
    store.txn(async (tx) => {
      tx.put("a", 2);
      tx.put("b", 2);
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal((await store.get("a"))?.value, 1);
  assert.equal(await store.get("b"), undefined);
  await store.txn(async (tx) => {
    const a = (await tx.get<number>("a"))!.value;
    tx.put("a", a + 1);
    tx.put("b", a + 1);
    assert.equal((await tx.get("b"))?.value, 2, "a transaction reads its own writes");
  });
  assert.equal((await store.get("a"))?.value, 2);
  assert.equal((await store.get("b"))?.value, 2);
});

test("concurrent read-modify-write transactions do not lose updates", async (t) => {
  const { store } = await tempStore(t);
  await store.put("counter", 0);
  await Promise.all(
    Array.from({ length: 20 }, () =>
      store.txn(async (tx) => {
        const v = (await tx.get<number>("counter"))!.value;
        await new Promise((r) => setImmediate(r)); // let the others interleave
        tx.put("counter", v + 1);
      }),
    ),
  );
  assert.equal((await store.get("counter"))?.value, 20);
});

test("a transaction that listed a prefix retries when a key appears under it", async (t) => {
  const { store } = await tempStore(t);
  let runs = 0;
  await store.txn(async (tx) => {
    runs++;
    const names = (await tx.list("names/")).map((d) => d.key);
    if (runs === 1) await store.put("names/late", 1); // a concurrent insert under the prefix
    if (!names.includes("names/mine")) tx.put("names/mine", names.length);
  });
  assert.equal(runs, 2);
  assert.equal((await store.get("names/mine"))?.value, 1);
});

test("migrations run once and a newer schema is refused with advice", async (t) => {
  const { path, store } = await tempStore(t);
  await store.close();
  const db = new Database(path);
  assert.deepEqual(migrate(db), { from: 1, to: 1 });
  db.pragma("user_version = 99");
  assert.throws(() => migrate(db), /schema version 99, newer than this lodged knows/);
  db.close();
});

test("the store opens intact after the writing process is killed with SIGKILL", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "lodge-crash-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "lodge.db");
  const writer = `
    import { SqliteStore } from ${JSON.stringify(new URL("../../src/state/sqlite.ts", import.meta.url).pathname)};
    const s = SqliteStore.open(${JSON.stringify(path)});
    for (let i = 0; ; i++) {
      await s.txn(async (tx) => { tx.put("big/" + (i % 50), { i, pad: "x".repeat(20000) }); tx.put("n", i); });
      if (i % 10 === 0) process.stdout.write(i + "\\n");
    }`;
  for (let round = 0; round < 4; round++) {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", writer], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    // Killed mid-stream, after a number of commits that differs each round (it reports them).
    const target = 20 + round * 40;
    const committed = await new Promise<number>((res) => {
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const last = Number(out.trim().split("\n").pop());
        if (last >= target) res(last);
      });
    });
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const store = SqliteStore.open(path);
    const n = (await store.get<number>("n"))?.value;
    assert.equal(typeof n, "number", "committed writes survive the kill");
    assert.ok(n! >= committed, `write ${committed} was committed before the kill and survives (n=${n})`);
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    db.close();
    await store.close();
  }
});
