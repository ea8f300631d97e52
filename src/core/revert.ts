/**
 * Undo steps for multi-step work: each step that succeeded registers how to take it back; if
 * a later step fails, run() undoes them all in reverse order. release() hands the steps over
 * (for a clean shutdown later) and leaves nothing to undo here.
 */
export class Revert {
  private steps: (() => unknown | Promise<unknown>)[] = [];

  add(step: () => unknown | Promise<unknown>): void {
    this.steps.push(step);
  }

  /** Keeps the work: nothing will be undone by this Revert. */
  commit(): void {
    this.steps = [];
  }

  /** Moves the steps into a new Revert (e.g. to run them at shutdown) and commits this one. */
  release(): Revert {
    const r = new Revert();
    r.steps = this.steps;
    this.steps = [];
    return r;
  }

  /** Runs every step, newest first; errors in one step do not stop the others. */
  async run(): Promise<Error[]> {
    const errors: Error[] = [];
    const steps = this.steps.reverse();
    this.steps = [];
    for (const s of steps) {
      try {
        await s();
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return errors;
  }
}
