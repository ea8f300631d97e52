export type EventType = "operation" | "logging" | "lifecycle";
export const EVENT_TYPES: readonly EventType[] = ["operation", "logging", "lifecycle"];

/** Wire shape of an event on /1.0/events (reference: definitions/Event). */
export interface Event<T = unknown> {
  type: EventType;
  timestamp: string;
  metadata: T;
  location: string;
  project: string;
}

export interface EventLogging {
  message: string;
  level: string;
  context: Record<string, string>;
}

export interface EventLifecycle {
  action: string;
  source: string;
  context?: Record<string, unknown>;
  requestor?: { username: string; protocol: string; address: string } | null;
}
