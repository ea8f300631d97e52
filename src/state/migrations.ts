import type Database from "better-sqlite3";

/**
 * Schema migrations of the SQLite store, applied in order at open. The index + 1 of a
 * migration is the schema version it produces (kept in PRAGMA user_version). Never edit a
 * released migration: append a new one.
 */
export type Migration = (db: Database.Database) => void;

export const migrations: Migration[] = [
  (db) => {
    db.exec(`
      CREATE TABLE docs (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        revision INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE meta (
        name TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO meta(name, value) VALUES ('revision', '0');
    `);
  },
];

export function migrate(db: Database.Database, list: Migration[] = migrations): { from: number; to: number } {
  const from = db.pragma("user_version", { simple: true }) as number;
  if (from > list.length) {
    throw new Error(
      `the state store has schema version ${from}, newer than this lodged knows (${list.length}); ` +
        `run a newer lodged or restore a backup of the state directory`,
    );
  }
  for (let v = from; v < list.length; v++) {
    db.transaction(() => {
      list[v]!(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return { from, to: list.length };
}
