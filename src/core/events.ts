import type { Event, EventType } from "../api/event.js";
import { nanoTimestamp } from "./timestamp.js";

export interface Subscriber {
  types: ReadonlySet<EventType>;
  /** undefined = every project */
  project?: string;
  send(e: Event): void;
}

/**
 * Fan-out of events to /1.0/events listeners. Sending is synchronous and ordered: a listener
 * sees an operation's state changes in the order they happened.
 */
export class EventHub {
  private readonly subs = new Set<Subscriber>();
  constructor(private readonly location = "none") {}

  subscribe(s: Subscriber): () => void {
    this.subs.add(s);
    return () => this.subs.delete(s);
  }

  get listeners(): number {
    return this.subs.size;
  }

  hasListener(type: EventType): boolean {
    for (const s of this.subs) if (s.types.has(type)) return true;
    return false;
  }

  publish<T>(type: EventType, metadata: T, project = "default"): void {
    if (this.subs.size === 0) return;
    const event: Event<T> = { type, timestamp: nanoTimestamp(), metadata, location: this.location, project };
    for (const s of this.subs) {
      if (!s.types.has(type)) continue;
      // Logging events belong to no project; everything else is filtered by project.
      if (s.project !== undefined && type !== "logging" && s.project !== project) continue;
      try {
        s.send(event);
      } catch {
        this.subs.delete(s);
      }
    }
  }

  /** A lifecycle event, e.g. ("config-updated", "/1.0"). */
  lifecycle(action: string, source: string, context: Record<string, unknown> = {}, project = "default"): void {
    this.publish("lifecycle", { action, source, context, requestor: null }, project);
  }
}
