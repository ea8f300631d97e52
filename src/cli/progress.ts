/**
 * Progress of long operations (image downloads, copies): LXD puts it in the operation's
 * metadata under keys ending in "_progress" ("download_progress": "45% (12.3MB/s)"). On a
 * terminal it is one line rewritten in place and wiped at the end; elsewhere nothing is shown,
 * so scripts and logs get clean output.
 */
import { ApiError } from "../api/errors.js";
import type { Event } from "../api/event.js";
import type { Operation } from "../api/operation.js";
import { StatusCode, isFinalStatus } from "../api/response.js";
import type { LodgeClient } from "../client/client.js";

/**
 * The progress line for an operation's metadata, or undefined when it has none. With a label
 * ("Retrieving image") the values follow it; without, each key names its own value
 * ("download_progress" -> "Download: 45%").
 */
export function progressText(metadata: Record<string, unknown> | null | undefined, label?: string): string | undefined {
  if (!metadata) return undefined;
  const entries = Object.entries(metadata)
    .filter(([k, v]) => k.endsWith("_progress") && v !== "" && v !== null && v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return undefined;
  if (label) return `${label}: ${entries.map(([, v]) => String(v)).join(", ")}`;
  return entries.map(([k, v]) => `${keyLabel(k)}: ${String(v)}`).join(", ");
}

function keyLabel(key: string): string {
  const words = key.slice(0, -"_progress".length).replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export interface ProgressOptions {
  /** Where the line goes; default stderr, so stdout stays the command's result. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Words put before the values, e.g. "Retrieving image". */
  label?: string;
  /** Force on or off; default: only when the stream is a terminal. */
  enabled?: boolean;
}

/** One updating line on a terminal; silent otherwise. Call done() when the work ends. */
export class ProgressRenderer {
  private readonly stream: NonNullable<ProgressOptions["stream"]>;
  private readonly enabled: boolean;
  private shown = "";

  constructor(private readonly opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.enabled = opts.enabled ?? !!this.stream.isTTY;
  }

  /** Shows the progress in `metadata`, if any, replacing the previous line. */
  update(metadata: Record<string, unknown> | null | undefined): void {
    const text = progressText(metadata, this.opts.label);
    if (text !== undefined) this.show(text);
  }

  /** Shows a free text (e.g. "Waiting for the operation") on the line. */
  show(text: string): void {
    if (!this.enabled) return;
    // A line longer than the terminal would wrap, and "\r" would then only redraw its tail.
    const max = (this.stream.columns || 80) - 1;
    const line = text.length > max ? text.slice(0, Math.max(0, max - 1)) + "…" : text;
    if (line === this.shown) return;
    this.stream.write("\r\x1b[K" + line);
    this.shown = line;
  }

  /** Wipes the line, leaving the cursor where the line began. */
  done(): void {
    if (!this.enabled || !this.shown) return;
    this.stream.write("\r\x1b[K");
    this.shown = "";
  }
}

/**
 * Runs `start` (which sends a request answered by an operation) and waits for that operation
 * while showing its progress (`start` may resolve null when there is nothing to wait for). The events socket is opened before the request is sent, as the
 * lxc client does, so no state change can be missed however fast the operation is; events
 * that arrive before the operation's id is known are kept and replayed. Throws ApiError with
 * the operation's error when it fails or is cancelled.
 */
export async function waitWithProgress<R extends Operation | null>(
  client: Pick<LodgeClient, "events" | "get">,
  start: () => Promise<R>,
  opts: ProgressOptions & { renderer?: ProgressRenderer } = {},
): Promise<R> {
  const renderer = opts.renderer ?? new ProgressRenderer(opts);
  const early = new Map<string, Operation>();
  let watch: ((op: Operation) => void) | undefined;
  const sub = await client.events(
    (e: Event) => {
      const op = e.metadata as Operation;
      if (!op || typeof op.id !== "string") return;
      if (watch) watch(op);
      else early.set(op.id, op);
    },
    { types: ["operation"] },
  );
  try {
    const started = await start();
    // null: the request was answered at once and there is nothing to wait for.
    if (started === null) return started;
    return await new Promise<R>((resolve, reject) => {
      let settled = false;
      const settle = (op: Operation) => {
        if (settled) return;
        settled = true;
        if (op.status_code === StatusCode.Success) resolve(op as R);
        else reject(new ApiError(400, op.err || `Operation ${op.status.toLowerCase()}`));
      };
      watch = (op) => {
        if (op.id !== started.id || settled) return;
        renderer.update(op.metadata);
        if (isFinalStatus(op.status_code)) settle(op);
      };
      watch(started);
      const seen = early.get(started.id);
      if (seen) watch(seen);
      early.clear();
      // Should the event stream end first (daemon restart), ask the server instead.
      sub.closed.then(() => {
        if (settled) return;
        client
          .get<Operation>(`/1.0/operations/${started.id}/wait?timeout=-1`)
          .then(settle, (e: unknown) => {
            if (!settled) {
              settled = true;
              reject(e);
            }
          });
      });
    });
  } finally {
    renderer.done();
    sub.close();
  }
}
