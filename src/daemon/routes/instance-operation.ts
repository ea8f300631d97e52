import { instanceUrl } from "../../instances/record.js";
import type { OperationContext, OperationManager, OperationSpec } from "../../core/operations.js";
import { async, type Reply } from "../route.js";

/** An operation's `resources` for one instance (its URL without the project query). */
export function instanceResources(project: string, name: string): Record<string, string[]> {
  return { instances: [instanceUrl(project, name).split("?")[0]!] };
}

/** Runs `work` as an async operation about one instance and answers with it. */
export function instanceTask(
  operations: OperationManager,
  project: string,
  name: string,
  description: string,
  work: (signal: AbortSignal, ctx: OperationContext) => Promise<unknown>,
  extra: Partial<OperationSpec> = {},
): Reply {
  return async(
    operations.create({
      description,
      project,
      resources: instanceResources(project, name),
      run: async (ctx) => {
        await work(ctx.signal, ctx);
      },
      ...extra,
    }),
  );
}
