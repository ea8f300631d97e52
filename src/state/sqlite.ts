import Database from "better-sqlite3";
import { migrate } from "./migrations.js";
import { RevisionConflict, type Doc, type DocumentStore, type Txn, type WriteOptions } from "./store.js";

const MAX_TXN_ATTEMPTS = 16;

interface Row {
  key: string;
  value: string;
  revision: number;
}

/**
 * The embedded store: one SQLite file in WAL mode. WAL with synchronous=NORMAL keeps the file
 * consistent whatever moment the process is killed at; a committed write survives a crash of
 * the daemon (only a power loss may drop the last few commits, never corrupt).
 */
export class SqliteStore implements DocumentStore {
  private readonly db: Database.Database;
  private readonly stmt;
  /** Chain that orders transaction retries (see txn). */
  private retryLock: Promise<void> = Promise.resolve();

  private constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    migrate(this.db);
    this.stmt = {
      get: this.db.prepare<[string], Row>("SELECT key, value, revision FROM docs WHERE key = ?"),
      list: this.db.prepare<[string, string], Row>(
        "SELECT key, value, revision FROM docs WHERE key >= ? AND key < ? ORDER BY key",
      ),
      listAll: this.db.prepare<[], Row>("SELECT key, value, revision FROM docs ORDER BY key"),
      upsert: this.db.prepare<[string, string, number]>(
        "INSERT INTO docs(key, value, revision) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, revision = excluded.revision",
      ),
      del: this.db.prepare<[string]>("DELETE FROM docs WHERE key = ?"),
      rev: this.db.prepare<[], { value: string }>("SELECT value FROM meta WHERE name = 'revision'"),
      setRev: this.db.prepare<[string]>("UPDATE meta SET value = ? WHERE name = 'revision'"),
    };
  }

  static open(path: string): SqliteStore {
    return new SqliteStore(path);
  }

  private readRevision(): number {
    return Number(this.stmt.rev.get()!.value);
  }

  private getSync<T>(key: string): Doc<T> | undefined {
    const row = this.stmt.get.get(key);
    return row ? { key: row.key, value: JSON.parse(row.value) as T, revision: row.revision } : undefined;
  }

  private listSync<T>(prefix: string): Doc<T>[] {
    const rows = prefix === "" ? this.stmt.listAll.all() : this.stmt.list.all(prefix, prefixEnd(prefix));
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.value) as T, revision: r.revision }));
  }

  async get<T>(key: string): Promise<Doc<T> | undefined> {
    return this.getSync<T>(key);
  }

  async list<T>(prefix: string): Promise<Doc<T>[]> {
    return this.listSync<T>(prefix);
  }

  async revision(): Promise<number> {
    return this.readRevision();
  }

  async put<T>(key: string, value: T, opts: WriteOptions = {}): Promise<number> {
    const json = JSON.stringify(value);
    return this.db.transaction(() => {
      this.check(key, opts.revision);
      const rev = this.readRevision() + 1;
      this.stmt.upsert.run(key, json, rev);
      this.stmt.setRev.run(String(rev));
      return rev;
    })();
  }

  async delete(key: string, opts: WriteOptions = {}): Promise<boolean> {
    return this.db.transaction(() => {
      this.check(key, opts.revision);
      const changed = this.stmt.del.run(key).changes > 0;
      if (changed) this.stmt.setRev.run(String(this.readRevision() + 1));
      return changed;
    })();
  }

  private check(key: string, expected: number | undefined): void {
    if (expected === undefined) return;
    const cur = this.stmt.get.get(key)?.revision ?? 0;
    if (cur !== expected) throw new RevisionConflict(key);
  }

  /**
   * The first attempt runs optimistically alongside others; a retry runs under a lock that
   * orders retries one after another, so heavy contention cannot starve a transaction.
   * (Consequently `fn` must not start another transaction itself.)
   */
  async txn<R>(fn: (tx: Txn) => Promise<R> | R): Promise<R> {
    const first = await this.attempt(fn);
    if (first.ok) return first.result;
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const before = this.retryLock;
    this.retryLock = before.then(() => mine);
    await before;
    try {
      for (let attempt = 1; ; attempt++) {
        const r = await this.attempt(fn);
        if (r.ok) return r.result;
        if (attempt + 1 >= MAX_TXN_ATTEMPTS) throw new RevisionConflict(r.keys.join(", "));
      }
    } finally {
      release();
    }
  }

  private async attempt<R>(fn: (tx: Txn) => Promise<R> | R): Promise<{ ok: true; result: R } | { ok: false; keys: string[] }> {
    const tx = new OptimisticTxn(
      (k) => this.getSync(k),
      (p) => this.listSync(p),
    );
    const result = await fn(tx);
    const committed = this.db.transaction(() => {
      if (!tx.readsStillValid((k) => this.stmt.get.get(k)?.revision ?? 0, (p) => this.listSync(p))) return false;
      if (tx.writes.size === 0) return true;
      const rev = this.readRevision() + 1;
      for (const [key, value] of tx.writes) {
        if (value === DELETED) this.stmt.del.run(key);
        else this.stmt.upsert.run(key, JSON.stringify(value), rev);
      }
      this.stmt.setRev.run(String(rev));
      return true;
    })();
    return committed ? { ok: true, result } : { ok: false, keys: [...tx.writes.keys()] };
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

const DELETED = Symbol("deleted");

/** Records what a transaction read (key → revision, prefix → listing) and buffers its writes. */
class OptimisticTxn implements Txn {
  readonly writes = new Map<string, unknown>();
  private readonly readKeys = new Map<string, number>();
  private readonly readPrefixes = new Map<string, string>();

  constructor(
    private readonly getDoc: (key: string) => Doc | undefined,
    private readonly listDocs: (prefix: string) => Doc[],
  ) {}

  async get<T>(key: string): Promise<Doc<T> | undefined> {
    if (this.writes.has(key)) {
      const v = this.writes.get(key);
      return v === DELETED ? undefined : { key, value: v as T, revision: -1 };
    }
    const doc = this.getDoc(key);
    this.readKeys.set(key, doc?.revision ?? 0);
    return doc as Doc<T> | undefined;
  }

  async list<T>(prefix: string): Promise<Doc<T>[]> {
    const docs = this.listDocs(prefix);
    this.readPrefixes.set(prefix, fingerprintListing(docs));
    const byKey = new Map(docs.map((d) => [d.key, d]));
    for (const [key, v] of this.writes) {
      if (!key.startsWith(prefix)) continue;
      if (v === DELETED) byKey.delete(key);
      else byKey.set(key, { key, value: v, revision: -1 });
    }
    return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : 1)) as Doc<T>[];
  }

  put<T>(key: string, value: T): void {
    this.writes.set(key, value);
  }

  delete(key: string): void {
    this.writes.set(key, DELETED);
  }

  readsStillValid(revOf: (key: string) => number, listDocs: (prefix: string) => Doc[]): boolean {
    for (const [key, rev] of this.readKeys) if (revOf(key) !== rev) return false;
    for (const [prefix, fp] of this.readPrefixes) if (fingerprintListing(listDocs(prefix)) !== fp) return false;
    return true;
  }
}

function fingerprintListing(docs: Doc[]): string {
  return docs.map((d) => `${d.key}@${d.revision}`).join("\n");
}

/** The smallest string greater than every string starting with `prefix`. */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
