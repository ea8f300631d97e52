import { createReadStream } from "node:fs";
import { stat, truncate } from "node:fs/promises";
import { badRequest } from "../../api/errors.js";
import type { ConsoleProcess } from "../../instances/console.js";
import { consoleOperation } from "../../instances/console-session.js";
import type { InstanceEngines } from "../../instances/drivers/engines.js";
import { hostName, instanceUrl } from "../../instances/record.js";
import type { InstanceService } from "../../instances/service.js";
import type { EventHub } from "../../core/events.js";
import type { OperationManager } from "../../core/operations.js";
import { instanceResources } from "./instance-operation.js";
import { async, empty, raw, type Request, type Route } from "../route.js";

export interface InstanceConsoleDeps {
  instances: InstanceService;
  driver: InstanceEngines;
  operations: OperationManager;
  events: EventHub;
  /** Attaches to a running container's console (liblxc name, terminal size). */
  attach: (host: string, cols: number, rows: number) => Promise<ConsoleProcess>;
}

interface ConsolePost {
  width?: number;
  height?: number;
  type?: string;
}

/**
 * /1.0/instances/<name>/console as LXD 5.0 has it for containers: POST attaches a terminal
 * (a websocket operation), GET returns the console log, DELETE empties it.
 */
export function instanceConsoleRoutes(deps: InstanceConsoleDeps): Route[] {
  const { instances, driver, operations, events } = deps;

  async function attach(req: Request) {
    const body = (req.body ?? {}) as ConsolePost;
    const type = body.type || "console";
    if (type === "vga") throw badRequest("VGA console is only supported by virtual machines");
    if (type !== "console") throw badRequest(`Unknown console type "${type}": use "console"`);
    const r = await instances.record(req.project, req.params.name!);
    const host = hostName(r.project, r.name);
    const state = await driver.status(host);
    if (state.status === "Frozen") throw badRequest(`Instance "${r.name}" is frozen`);
    if (state.status !== "Running") throw badRequest(`Instance "${r.name}" is not running`);
    const size = (v: unknown, dflt: number) => (typeof v === "number" && Number.isInteger(v) && v > 0 && v < 10_000 ? v : dflt);
    const cols = size(body.width, 80);
    const rows = size(body.height, 24);
    const spec = consoleOperation(async () => {
      const proc = await deps.attach(host, cols, rows);
      events.lifecycle("instance-console", instanceUrl(r.project, r.name), { type: "console" }, r.project);
      return proc;
    });
    return async(
      operations.create({
        description: "Showing console",
        project: req.project,
        resources: instanceResources(r.project, r.name),
        ...spec,
      }),
    );
  }

  async function log(req: Request) {
    const r = await instances.record(req.project, req.params.name!);
    const path = driver.consoleLogPath(hostName(r.project, r.name));
    const st = await stat(path).catch(() => undefined);
    events.lifecycle("instance-console-retrieved", instanceUrl(r.project, r.name), {}, r.project);
    // A container that never ran has no log yet: its console said nothing.
    if (!st?.isFile() || st.size === 0) return raw(Buffer.alloc(0), { "Content-Type": "application/octet-stream" });
    return raw(createReadStream(path, { start: 0, end: Math.max(0, st.size - 1) }), {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(st.size),
    });
  }

  async function clear(req: Request) {
    const r = await instances.record(req.project, req.params.name!);
    const path = driver.consoleLogPath(hostName(r.project, r.name));
    const st = await stat(path).catch(() => undefined);
    if (st && !st.isFile()) throw badRequest("The console log is not a regular file");
    if (st) await truncate(path, 0);
    events.lifecycle("instance-console-reset", instanceUrl(r.project, r.name), {}, r.project);
    return empty();
  }

  return [
    { method: "POST", path: "/1.0/instances/:name/console", access: "trusted", handler: attach },
    { method: "GET", path: "/1.0/instances/:name/console", access: "trusted", handler: log },
    { method: "DELETE", path: "/1.0/instances/:name/console", access: "trusted", handler: clear },
  ];
}
