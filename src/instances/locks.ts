import { ApiError } from "../api/errors.js";

/**
 * One holder at a time per key (an instance), with a bounded wait: a caller that cannot get
 * the lock within the timeout gets a clear "busy" error instead of queueing forever, and the
 * lock is released on every path by `with`.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async with<T>(key: string, what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(key, what, timeoutMs);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private async acquire(key: string, what: string, timeoutMs: number): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
    const got = await Promise.race([prev.then(() => "ok" as const), timedOut]);
    clearTimeout(timer);
    if (got === "timeout") {
      // Give our place up once our turn comes, so later callers are not blocked by us.
      void prev.then(() => release());
      throw new ApiError(409, `${what} is busy with another operation; try again when it has finished`);
    }
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
