import { createWriteStream, type WriteStream } from "node:fs";

export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogContext = Record<string, string | number | boolean | undefined | null>;

export interface LogRecord {
  time: Date;
  level: LogLevel;
  message: string;
  context: Record<string, string>;
}

export type LogSink = (r: LogRecord) => void;

/** Context keys whose values never reach a log line, a log file or a logging event. */
const SECRET_KEY = /(password|secret|token|passphrase|private[_-]?key)/i;

/**
 * Structured logger: each record has a level, a message and flat key=value context, written
 * as logfmt lines to stderr and to the daemon's log file, and forwarded to any extra sink
 * (the events hub turns them into "logging" events).
 */
export class Logger {
  private readonly sinks: { sink: LogSink; min: LogLevel }[] = [];

  constructor(private readonly base: LogContext = {}, sinks?: { sink: LogSink; min: LogLevel }[]) {
    if (sinks) this.sinks = sinks;
  }

  addSink(sink: LogSink, min: LogLevel = "debug"): () => void {
    const entry = { sink, min };
    this.sinks.push(entry);
    return () => {
      const i = this.sinks.indexOf(entry);
      if (i >= 0) this.sinks.splice(i, 1);
    };
  }

  /** A logger that adds `ctx` to every record and shares this logger's sinks. */
  child(ctx: LogContext): Logger {
    return new Logger({ ...this.base, ...ctx }, this.sinks);
  }

  debug(msg: string, ctx?: LogContext): void {
    this.log("debug", msg, ctx);
  }
  info(msg: string, ctx?: LogContext): void {
    this.log("info", msg, ctx);
  }
  warn(msg: string, ctx?: LogContext): void {
    this.log("warn", msg, ctx);
  }
  error(msg: string, ctx?: LogContext): void {
    this.log("error", msg, ctx);
  }

  log(level: LogLevel, message: string, ctx?: LogContext): void {
    const context: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...this.base, ...ctx })) {
      if (v === undefined || v === null) continue;
      context[k] = SECRET_KEY.test(k) ? "(redacted)" : String(v);
    }
    const record: LogRecord = { time: new Date(), level, message, context };
    for (const { sink, min } of this.sinks) {
      if (RANK[level] >= RANK[min]) {
        try {
          sink(record);
        } catch {
          // A failing sink must never take the daemon down.
        }
      }
    }
  }
}

export function formatLogfmt(r: LogRecord): string {
  const parts = [`time=${r.time.toISOString()}`, `level=${r.level}`, `msg=${quote(r.message)}`];
  for (const [k, v] of Object.entries(r.context)) parts.push(`${k}=${quote(v)}`);
  return parts.join(" ") + "\n";
}

function quote(v: string): string {
  return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
}

export function streamSink(stream: NodeJS.WritableStream): LogSink {
  return (r) => stream.write(formatLogfmt(r));
}

/** Appends to a log file; returns the sink and a closer. */
export function fileSink(path: string): { sink: LogSink; close: () => Promise<void> } {
  const stream: WriteStream = createWriteStream(path, { flags: "a", mode: 0o600 });
  stream.on("error", () => {});
  return {
    sink: (r) => stream.write(formatLogfmt(r)),
    close: () => new Promise((res) => stream.end(() => res())),
  };
}

export function parseLogLevel(s: string | undefined, fallback: LogLevel): LogLevel {
  return s && s in RANK ? (s as LogLevel) : fallback;
}
