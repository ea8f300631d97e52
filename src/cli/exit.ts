/**
 * Exit codes of `lodge`, and the one place that turns an error into a message and a code.
 * Kept free of the HTTP client so that `lodge --help` does not load it.
 */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** The request or the operation failed; the API's error is printed. */
  Failed: 1,
  /** The command line was wrong. */
  Usage: 2,
  /** The daemon could not be reached. */
  Unreachable: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  the request or operation failed (the server's error is printed)
  2  usage error (unknown command or option, bad argument)
  3  cannot reach lodged (not running, wrong LODGE_DIR, no permission)

Environment:
  LODGE_DIR  lodged's state directory, whose unix.socket is used (default /var/lib/lodge)
`;

/** A mistake on the command line, found after parsing (bad JSON, a bad value). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A failure the verb already explained; only the exit code is left to set. */
export class SilentFailure extends Error {
  override name = "SilentFailure";
  constructor(readonly code: ExitCode = ExitCode.Failed) {
    super("");
  }
}

/** Prints `err` on stderr as `Error: ...` and returns the exit code it stands for. */
export function reportError(err: unknown): ExitCode {
  if (err instanceof SilentFailure) return err.code;
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`Error: ${e.message}\n`);
  // Matched by name: ConnectionError lives with the client, which this module must not load.
  if (e.name === "ConnectionError") return ExitCode.Unreachable;
  if (e.name === "UsageError") return ExitCode.Usage;
  return ExitCode.Failed;
}
