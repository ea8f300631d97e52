import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import { EVENT_TYPES, type Event, type EventLifecycle, type EventLogging, type EventType } from "../api/event.js";
import type { Operation } from "../api/operation.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { yamlRenderer } from "./output.js";
import { progressText } from "./progress.js";

interface MonitorOptions {
  type: string[];
  pretty?: boolean;
  allProjects?: boolean;
}

export function register(program: Command): void {
  program
    .command("monitor")
    .description("Print the server's events as they happen, until interrupted (yaml, or json with --format json)")
    .option("--type <type>", `Event type to show: ${EVENT_TYPES.join(", ")} (repeat or comma-separate; default all)`, collect, [])
    .option("--pretty", "One readable line per event")
    .option("--all-projects", "Show events of every project")
    .action(async (opts: MonitorOptions, cmd: Command) => {
      const g = globalsOf(cmd);
      if (g.format === "csv") throw new UsageError("monitor prints yaml, json or --pretty lines, not csv");
      const types = opts.type.map((t) => {
        if (!EVENT_TYPES.includes(t as EventType)) throw new UsageError(`Unknown event type "${t}": use ${EVENT_TYPES.join(", ")}`);
        return t as EventType;
      });
      const render = opts.pretty
        ? renderPretty
        : g.format === "json"
          ? (e: Event) => JSON.stringify(e) + "\n"
          : await yamlRenderer().then((yaml) => (e: Event) => yaml(e) + "\n");
      await withClient(g, async (c) => {
        const sub = await c.events((e) => process.stdout.write(render(e)), { types, allProjects: opts.allProjects });
        let interrupted = false;
        const stop = () => {
          interrupted = true;
          sub.close();
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        await sub.closed;
        if (!interrupted) throw new ApiError(503, "The server closed the event stream");
      });
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(",").map((s) => s.trim()).filter(Boolean)];
}

/** One line per event, for people watching a terminal. */
export function renderPretty(e: Event): string {
  const head = `${e.timestamp} ${e.type}`;
  switch (e.type) {
    case "lifecycle": {
      const m = e.metadata as EventLifecycle;
      return `${head} ${m.action} ${m.source}${pairs(m.context ?? {})}\n`;
    }
    case "logging": {
      const m = e.metadata as EventLogging;
      return `${head} ${m.level.toUpperCase()} ${m.message}${pairs(m.context ?? {})}\n`;
    }
    case "operation": {
      const op = e.metadata as Operation;
      const progress = progressText(op.metadata);
      return `${head} ${op.id} ${op.description}: ${op.status}${op.err ? ` (${op.err})` : ""}${progress ? ` [${progress}]` : ""}\n`;
    }
    default:
      return `${head} ${JSON.stringify(e.metadata)}\n`;
  }
}

function pairs(ctx: Record<string, unknown>): string {
  return Object.entries(ctx)
    .map(([k, v]) => ` ${k}=${Array.isArray(v) ? `[${v.join(" ")}]` : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}`)
    .join("");
}
