import { badRequest } from "../../api/errors.js";
import type { InstanceLifecycle } from "../../instances/lifecycle.js";
import { sync, type Route } from "../route.js";

/**
 * LXD's /internal/shutdown, which `lodged shutdown` calls when the host goes down: every running
 * instance is stopped (lifecycle.shutdownAll), then the daemon exits. `timeout` (seconds) caps
 * each instance's boot.host_shutdown_timeout.
 */
export function internalRoutes(deps: { lifecycle: InstanceLifecycle; exit: () => void }): Route[] {
  return [
    {
      method: "PUT",
      path: "/internal/shutdown",
      access: "trusted",
      handler: async (req) => {
        const raw = req.query.timeout;
        const timeout = raw === undefined || raw === "" ? undefined : Number(raw);
        if (timeout !== undefined && !(Number.isFinite(timeout) && timeout >= 0)) throw badRequest(`"timeout" must be a number of seconds, not ${JSON.stringify(raw)}`);
        const stopped = await deps.lifecycle.shutdownAll(timeout);
        // The reply goes out first; the daemon then closes as on SIGTERM.
        setTimeout(deps.exit, 20);
        return sync({ stopped });
      },
    },
  ];
}
