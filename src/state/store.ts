/**
 * The state store: a transactional document store. Keys are slash-separated paths
 * ("instances/default/c1"), values are JSON documents. Every committed write bumps one global
 * revision; a document carries the revision of its last write, which callers use for
 * compare-and-swap. The same contract can be served by SQLite (embedded) or etcd (clusters).
 */

export interface Doc<T = unknown> {
  key: string;
  value: T;
  /** Global revision of the last write to this key. */
  revision: number;
}

export interface StoreReader {
  get<T = unknown>(key: string): Promise<Doc<T> | undefined>;
  /** Documents whose key starts with `prefix`, ordered by key. */
  list<T = unknown>(prefix: string): Promise<Doc<T>[]>;
}

export interface WriteOptions {
  /** Write only if the key's current revision equals this; 0 means "must not exist". */
  revision?: number;
}

/** A transaction's view: reads see the store plus this transaction's own buffered writes. */
export interface Txn extends StoreReader {
  put<T>(key: string, value: T): void;
  delete(key: string): void;
}

export interface DocumentStore extends StoreReader {
  put<T>(key: string, value: T, opts?: WriteOptions): Promise<number>;
  delete(key: string, opts?: WriteOptions): Promise<boolean>;
  /**
   * Runs `fn` optimistically: its writes are buffered and committed atomically only if nothing
   * it read changed meanwhile; otherwise it runs again (a bounded number of times). `fn` may
   * therefore run more than once and must not have side effects outside the transaction.
   */
  txn<R>(fn: (tx: Txn) => Promise<R> | R): Promise<R>;
  /** Current global revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
}

/** A compare-and-swap failed: someone else wrote the key first. */
export class RevisionConflict extends Error {
  constructor(readonly key: string) {
    super(`"${key}" was changed concurrently`);
    this.name = "RevisionConflict";
  }
}
