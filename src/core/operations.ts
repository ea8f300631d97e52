import { randomUUID, randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { WebSocket } from "ws";
import type { Operation, OperationClass } from "../api/operation.js";
import { StatusCode, isFinalStatus, statusName } from "../api/response.js";
import { ApiError, badRequest, notFound } from "../api/errors.js";
import type { EventHub } from "./events.js";
import type { Logger } from "./logger.js";

/** What a running operation's body can do. */
export interface OperationContext {
  readonly id: string;
  /** Aborted when the operation is cancelled (or the daemon shuts down). */
  readonly signal: AbortSignal;
  /** Merges keys into the operation's metadata and broadcasts the change. */
  updateMetadata(patch: Record<string, unknown>): void;
}

export interface OperationSpec {
  class?: OperationClass;
  description: string;
  project?: string;
  resources?: Record<string, string[]>;
  metadata?: Record<string, unknown>;
  /** True when `run` honours its abort signal. */
  cancellable?: boolean;
  /** The work; its resolved value, if any, is merged into the final metadata. */
  run: (ctx: OperationContext) => Promise<Record<string, unknown> | void>;
  /** websocket operations: a client connected with one of the secrets in metadata. */
  connect?: (secret: string, ws: WebSocket) => boolean;
}

/** How long a finished operation stays visible (GET, /wait) before it is forgotten. */
const FINISHED_RETENTION_MS = 60_000;

class OperationEntry {
  readonly id = randomUUID();
  readonly createdAt = new Date();
  updatedAt = this.createdAt;
  statusCode: number = StatusCode.Pending;
  err = "";
  metadata: Record<string, unknown> | null;
  readonly abort = new AbortController();
  readonly done = new EventEmitter();

  constructor(
    readonly spec: OperationSpec,
    readonly location: string,
  ) {
    this.metadata = spec.metadata ? { ...spec.metadata } : null;
    this.done.setMaxListeners(0);
  }

  get project(): string {
    return this.spec.project ?? "default";
  }

  toApi(): Operation {
    return {
      id: this.id,
      class: this.spec.class ?? "task",
      description: this.spec.description,
      created_at: this.createdAt.toISOString(),
      updated_at: this.updatedAt.toISOString(),
      status: statusName(this.statusCode),
      status_code: this.statusCode,
      resources: this.spec.resources ?? null,
      metadata: this.metadata,
      may_cancel: !!this.spec.cancellable && !isFinalStatus(this.statusCode),
      err: this.err,
      location: this.location,
    };
  }
}

/**
 * In-memory registry of operations. Every state change and metadata update is broadcast as an
 * "operation" event, because that is how the `lxc` client learns an operation finished.
 */
export class OperationManager {
  private readonly ops = new Map<string, OperationEntry>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly events: EventHub,
    private readonly log: Logger,
    private readonly location = "none",
  ) {}

  /** Creates the operation and starts its body on the next tick; returns its wire form. */
  create(spec: OperationSpec): Operation {
    const op = new OperationEntry(spec, this.location);
    this.ops.set(op.id, op);
    this.log.debug("operation created", { id: op.id, description: spec.description });
    this.emit(op);
    setImmediate(() => void this.execute(op));
    return op.toApi();
  }

  private async execute(op: OperationEntry): Promise<void> {
    if (op.abort.signal.aborted) return this.finish(op, StatusCode.Cancelled, "");
    this.transition(op, StatusCode.Running);
    const ctx: OperationContext = {
      id: op.id,
      signal: op.abort.signal,
      updateMetadata: (patch) => {
        if (isFinalStatus(op.statusCode)) return;
        op.metadata = { ...(op.metadata ?? {}), ...patch };
        op.updatedAt = new Date();
        this.emit(op);
      },
    };
    try {
      const result = await op.spec.run(ctx);
      if (result) op.metadata = { ...(op.metadata ?? {}), ...result };
      if (op.abort.signal.aborted) this.finish(op, StatusCode.Cancelled, "");
      else this.finish(op, StatusCode.Success, "");
    } catch (e) {
      if (op.abort.signal.aborted) this.finish(op, StatusCode.Cancelled, "");
      else {
        const msg = e instanceof Error ? e.message : String(e);
        if (!(e instanceof ApiError)) this.log.error("operation failed", { id: op.id, err: msg });
        this.finish(op, StatusCode.Failure, msg);
      }
    }
  }

  private transition(op: OperationEntry, code: number): void {
    op.statusCode = code;
    op.updatedAt = new Date();
    this.emit(op);
  }

  private finish(op: OperationEntry, code: number, err: string): void {
    op.err = err;
    this.transition(op, code);
    this.log.debug("operation finished", { id: op.id, status: statusName(code), err: err || undefined });
    op.done.emit("done");
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.ops.delete(op.id);
    }, FINISHED_RETENTION_MS);
    t.unref();
    this.timers.add(t);
  }

  private emit(op: OperationEntry): void {
    this.events.publish("operation", op.toApi(), op.project);
  }

  private entry(id: string): OperationEntry {
    const op = this.ops.get(id);
    if (!op) throw notFound(`Operation "${id}" not found`);
    return op;
  }

  get(id: string): Operation {
    return this.entry(id).toApi();
  }

  /** Operations of one project (or all when project is undefined). */
  list(project?: string): Operation[] {
    const out: Operation[] = [];
    for (const op of this.ops.values()) if (project === undefined || op.project === project) out.push(op.toApi());
    return out;
  }

  cancel(id: string): Operation {
    const op = this.entry(id);
    if (isFinalStatus(op.statusCode)) throw badRequest(`Operation "${id}" has already finished (${statusName(op.statusCode)})`);
    if (!op.spec.cancellable) throw new ApiError(403, `Operation "${id}" cannot be cancelled`);
    if (op.statusCode !== StatusCode.Cancelling) {
      this.transition(op, StatusCode.Cancelling);
      op.abort.abort(new ApiError(400, "Operation cancelled"));
    }
    return op.toApi();
  }

  /** Resolves with the operation once it has finished, or as it stands when `timeoutMs` passes (<0: never). */
  async wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<Operation> {
    const op = this.entry(id);
    if (isFinalStatus(op.statusCode)) return op.toApi();
    await new Promise<void>((resolve) => {
      const timer = timeoutMs >= 0 ? setTimeout(done, timeoutMs) : undefined;
      function done() {
        if (timer) clearTimeout(timer);
        op.done.off("done", done);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      op.done.on("done", done);
      signal?.addEventListener("abort", done);
    });
    return op.toApi();
  }

  /** Hands a websocket to the operation that issued `secret`; false if none did. */
  connect(id: string, secret: string, ws: WebSocket): boolean {
    const op = this.entry(id);
    if (isFinalStatus(op.statusCode) || !op.spec.connect) return false;
    return op.spec.connect(secret, ws);
  }

  /** Cancels whatever still runs (daemon shutdown) and waits up to `timeoutMs` for it to end. */
  async shutdown(timeoutMs: number): Promise<void> {
    const running = [...this.ops.values()].filter((op) => !isFinalStatus(op.statusCode));
    for (const op of running) op.abort.abort(new ApiError(503, "lodged is shutting down"));
    await Promise.all(running.map((op) => this.wait(op.id, timeoutMs)));
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/** A random secret for websocket operations (64 hex characters, as LXD). */
export function newSecret(): string {
  return randomBytes(32).toString("hex");
}
