import { createReadStream } from "node:fs";
import { readdir, stat, unlink } from "node:fs/promises";
import { basename, join } from "node:path";
import type { InstanceExecPost, InstanceStatePut } from "../../api/instance.js";
import { badRequest, notFound } from "../../api/errors.js";
import type { InstanceEngines } from "../../instances/drivers/engines.js";
import { execOperation } from "../../instances/exec/session.js";
import { execEnvironment, snapIn } from "../../instances/exec/environment.js";
import { InstanceFiles } from "../../instances/files/fileio.js";
import type { InstanceLifecycle } from "../../instances/lifecycle.js";
import { hostName } from "../../instances/record.js";
import type { InstanceService } from "../../instances/service.js";
import type { OperationManager } from "../../core/operations.js";
import { instanceResources, instanceTask } from "./instance-operation.js";
import { async, empty, raw, sync, type Request, type Route } from "../route.js";

export interface InstanceStateDeps {
  instances: InstanceService;
  lifecycle: InstanceLifecycle;
  operations: OperationManager;
  driver: InstanceEngines;
  /** Per-instance directory for exec output and other logs. */
  logDir: (project: string, name: string) => Promise<string>;
}

const ACTIONS = new Set(["start", "stop", "restart", "freeze", "unfreeze"]);

/** State changes, exec and logs of an instance. */
export function instanceStateRoutes(deps: InstanceStateDeps): Route[] {
  const { instances, lifecycle, operations, driver } = deps;
  const name = (req: Request) => req.params.name!;

  async function putState(req: Request) {
    const body = (req.body ?? {}) as InstanceStatePut;
    if (!ACTIONS.has(body.action)) throw badRequest(`Unknown action "${String(body.action)}": use start, stop, restart, freeze or unfreeze`);
    if (body.stateful) throw badRequest("Stateful stop/start is not supported for containers yet");
    await instances.record(req.project, name(req));
    const description = { start: "Starting instance", stop: "Stopping instance", restart: "Restarting instance", freeze: "Freezing instance", unfreeze: "Unfreezing instance" }[body.action];
    return instanceTask(operations, req.project, name(req), description, () =>
      lifecycle.change(req.project, name(req), body.action, { force: body.force, timeout: body.timeout }),
    );
  }

  async function exec(req: Request) {
    const body = (req.body ?? {}) as InstanceExecPost;
    if (!Array.isArray(body.command) || body.command.length === 0 || !body.command.every((c) => typeof c === "string"))
      throw badRequest('"command" must be a non-empty list of strings');
    const r = await instances.record(req.project, name(req));
    const host = hostName(r.project, r.name);
    const state = await driver.status(host);
    // LXD's words: the client and scripts tell the two apart.
    if (state.status === "Frozen") throw badRequest("Instance is frozen");
    if (state.status !== "Running") throw badRequest("Instance is not running");
    for (const k of ["user", "group"] as const)
      if (body[k] !== undefined && !(Number.isInteger(body[k]) && body[k]! >= 0 && body[k]! < 2 ** 32))
        throw badRequest(`"${k}" must be a uid/gid number (0 to 4294967295), not ${JSON.stringify(body[k])}`);
    const uid = body.user ?? 0;
    const { env, cwd } = await execEnvironment({
      uid,
      // environment.* keys from the profiles too, as every other key.
      env: { ...envFromConfig((await instances.expanded(r)).config), ...(body.environment ?? {}) },
      cwd: body.cwd,
      // A VM's processes are the guest's, seen through its agent, not through QEMU's pid.
      hasSnap: driver.hasGuestAgent(host) ? async () => false : snapIn(state.pid),
      passwd: async () => (await driver.guestAgent(host))?.read("/etc/passwd") ?? new InstanceFiles({ pid: state.pid, instance: r.name }).read("/etc/passwd"),
    });
    const interactive = !!body.interactive;
    const spec = execOperation(
      {
        interactive,
        waitForWebsocket: !!body["wait-for-websocket"],
        recordOutput: !!body["record-output"],
        // The log directory (made on first use) only when output is recorded: exec is a hot path.
        record: body["record-output"] ? { dir: await deps.logDir(r.project, r.name), apiPrefix: `/1.0/instances/${r.name}/logs` } : undefined,
      },
      () =>
        driver.exec(host, {
          command: body.command,
          env,
          cwd,
          uid: body.user,
          gid: body.group,
          pty: interactive ? { cols: body.width || 80, rows: body.height || 24 } : undefined,
        }),
    );
    return async(operations.create({ description: "Executing command", project: req.project, resources: instanceResources(req.project, name(req)), ...spec }));
  }

  async function logs(req: Request) {
    const r = await instances.record(req.project, name(req));
    const dir = await deps.logDir(r.project, r.name);
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => !f.startsWith("."));
    const all = ["lxc.log", "console.log", ...files.filter((f) => f !== "lxc.log" && f !== "console.log")];
    return sync(all.map((f) => `/1.0/instances/${r.name}/logs/${f}`));
  }

  async function logPath(req: Request): Promise<string> {
    const r = await instances.record(req.project, name(req));
    const file = basename(req.params.file!);
    if (file !== req.params.file) throw badRequest("Invalid log file name");
    const host = hostName(r.project, r.name);
    if (file === "lxc.log") return driver.logPath(host);
    if (file === "console.log") return driver.consoleLogPath(host);
    return join(await deps.logDir(r.project, r.name), file);
  }

  return [
    {
      method: "GET",
      path: "/1.0/instances/:name/state",
      access: "trusted",
      handler: async (req) => sync(await lifecycle.wireState(await instances.record(req.project, name(req)))),
    },
    { method: "PUT", path: "/1.0/instances/:name/state", access: "trusted", handler: putState },
    { method: "POST", path: "/1.0/instances/:name/exec", access: "trusted", handler: exec },
    { method: "GET", path: "/1.0/instances/:name/logs", access: "trusted", handler: logs },
    {
      method: "GET",
      path: "/1.0/instances/:name/logs/:file",
      access: "trusted",
      handler: async (req) => {
        const path = await logPath(req);
        const st = await stat(path).catch(() => undefined);
        if (!st?.isFile()) throw notFound(`Log file "${req.params.file}" not found`);
        return raw(createReadStream(path), { "content-type": "application/octet-stream", "content-length": String(st.size) });
      },
    },
    {
      method: "DELETE",
      path: "/1.0/instances/:name/logs/:file",
      access: "trusted",
      handler: async (req) => {
        const file = req.params.file!;
        if (!/^exec_[0-9a-f]+\.(stdout|stderr)$/.test(file)) throw badRequest(`Only exec output logs can be deleted, not "${file}"`);
        await unlink(await logPath(req)).catch(() => {
          throw notFound(`Log file "${file}" not found`);
        });
        return empty();
      },
    },
  ];
}

function envFromConfig(config: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) if (k.startsWith("environment.")) out[k.slice("environment.".length)] = v;
  return out;
}
