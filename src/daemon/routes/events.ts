import { EVENT_TYPES, type EventType } from "../../api/event.js";
import { badRequest } from "../../api/errors.js";
import type { EventHub } from "../../core/events.js";
import { flag, type WsRoute } from "../route.js";

export function eventRoutes(deps: { events: EventHub }): WsRoute[] {
  return [
    {
      path: "/1.0/events",
      access: "trusted",
      accept: (req) => {
        const types = parseTypes(req.query.type);
        const project = flag(req.query["all-projects"]) ? undefined : req.project;
        return (ws) => {
          const off = deps.events.subscribe({
            types,
            project,
            send: (e) => ws.send(JSON.stringify(e)),
          });
          ws.on("close", off);
          ws.on("error", off);
          // Clients never send on this socket; drain anything they do.
          ws.on("message", () => {});
        };
      },
    },
  ];
}

function parseTypes(raw: string | undefined): Set<EventType> {
  if (!raw) return new Set(EVENT_TYPES);
  const out = new Set<EventType>();
  for (const t of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (!EVENT_TYPES.includes(t as EventType))
      throw badRequest(`Unknown event type "${t}": use ${EVENT_TYPES.join(", ")}`);
    out.add(t as EventType);
  }
  return out;
}
