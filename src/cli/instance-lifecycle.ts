/**
 * `lodge start|stop|restart|pause|resume|delete|rename`: one module, one verb each. The
 * verb table asks `verb(name)` for the one being run, so only that command is registered.
 */
import type { Command } from "commander";
import type { StateAction } from "../api/instance.js";
import type { Operation } from "../api/operation.js";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { checkInstanceName, parseId } from "./instance-args.js";
import { allInstanceNames, changeState, fetchInstance, forEachName, instanceUrl, runOperation, type StateOptions } from "./instance-ref.js";
import type { VerbModule } from "./program.js";
import { deleteSnapshot, renameSnapshot, splitSnapshot } from "./instance-snapshot.js";

interface LifecycleOpts {
  force?: boolean;
  timeout?: string;
  all?: boolean;
}

const STATE_VERBS: Record<string, { action: StateAction; summary: string; stopFlags: boolean }> = {
  start: { action: "start", summary: "Start instances", stopFlags: false },
  stop: { action: "stop", summary: "Stop instances", stopFlags: true },
  restart: { action: "restart", summary: "Restart instances", stopFlags: true },
  pause: { action: "freeze", summary: "Pause (freeze) instances", stopFlags: false },
  resume: { action: "unfreeze", summary: "Resume (unfreeze) paused instances", stopFlags: false },
};

function registerState(program: Command, verb: string): void {
  const { action, summary, stopFlags } = STATE_VERBS[verb]!;
  const cmd = program
    .command(verb)
    .description(summary)
    .argument("[instances...]", "Instance names")
    .option("--all", "All instances of the project");
  if (stopFlags) cmd.option("-f, --force", "Force: kill instead of a clean shutdown").option("--timeout <seconds>", "How long to wait for a clean shutdown before failing (-1: forever)");
  cmd.action(async (names: string[], opts: LifecycleOpts, c: Command) => {
    const state: StateOptions = { force: opts.force };
    if (opts.timeout !== undefined) state.timeout = opts.timeout === "-1" ? -1 : parseId(opts.timeout, "timeout");
    await withClient(globalsOf(c), async (client) => {
      const targets = await namesOrAll(names, opts.all, () => allInstanceNames(client));
      await forEachName(targets, async (name) => {
        let act = action;
        // As lxc: `start` on a paused instance resumes it.
        if (act === "start") {
          const { instance } = await fetchInstance(client, name);
          if (instance.status === "Frozen") act = "unfreeze";
        }
        await changeState(client, name, act, state);
      });
    });
  });
}

async function namesOrAll(names: string[], all: boolean | undefined, list: () => Promise<string[]>): Promise<string[]> {
  if (all && names.length) throw new UsageError("Give instance names or --all, not both");
  if (all) return list();
  if (names.length === 0) throw new UsageError("No instance given: name one or more (or use --all)");
  return names;
}

function registerDelete(program: Command): void {
  program
    .command("delete")
    .description("Delete instances, or snapshots (INSTANCE/SNAPSHOT)")
    .argument("<instances...>", "Instance names, or INSTANCE/SNAPSHOT")
    .option("-f, --force", "Stop running instances first (forcefully)")
    .action(async (names: string[], opts: { force?: boolean }, c: Command) => {
      await withClient(globalsOf(c), (client) =>
        forEachName(names, async (name) => {
          const snap = splitSnapshot(name);
          if (snap) return deleteSnapshot(client, snap[0], snap[1]);
          const { instance } = await fetchInstance(client, name);
          if (instance.status !== "Stopped") {
            if (!opts.force) throw new Error(`Instance "${name}" is ${instance.status.toLowerCase()}: stop it first or pass --force`);
            await changeState(client, name, "stop", { force: true });
            // An ephemeral instance went with its stop (as lxc does, nothing is left to delete).
            if (instance.ephemeral) return;
          }
          await runOperation(client, () => client.delete<Operation>(instanceUrl(name)));
        }),
      );
    });
}

function registerRename(program: Command): void {
  program
    .command("rename")
    .description("Rename an instance (it must be stopped), or a snapshot (INSTANCE/OLD NEW or INSTANCE/NEW)")
    .argument("<old>", "Current name (INSTANCE/SNAPSHOT for a snapshot)")
    .argument("<new>", "New name")
    .action(async (from: string, to: string, _opts, c: Command) => {
      const snap = splitSnapshot(from);
      if (snap) {
        const target = to.includes("/") ? splitSnapshot(to) : [snap[0], to];
        if (!target || target[0] !== snap[0]) throw new UsageError(`A snapshot is renamed within its instance: lodge rename ${snap[0]}/${snap[1]} NEW`);
        await withClient(globalsOf(c), (client) => renameSnapshot(client, snap[0], snap[1], target[1]!));
        return;
      }
      if (to.includes(":") || to.includes("/")) throw new UsageError(`Cannot move "${from}" to "${to}": only renames on this server are supported`);
      checkInstanceName(to);
      await withClient(globalsOf(c), (client) => runOperation(client, () => client.post<Operation>(instanceUrl(from), { name: to })));
    });
}

/** The verb table's entry point: the module registers only the verb asked for. */
export function verb(name: string): VerbModule {
  return {
    register(program: Command) {
      if (name in STATE_VERBS) registerState(program, name);
      else if (name === "delete") registerDelete(program);
      else if (name === "rename") registerRename(program);
      else throw new Error(`instance-lifecycle: no verb "${name}"`);
    },
  };
}
