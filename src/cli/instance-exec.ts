/**
 * `lodge exec NAME [flags] -- CMD…`: the command's output on our stdout and stderr, our stdin
 * to it, its exit code as ours. Interactive (a pty, raw local terminal) when stdin and stdout
 * are terminals, or with -t.
 */
import type { Command } from "commander";
import type { InstanceExecPost } from "../api/instance.js";
import { SilentFailure, UsageError, type ExitCode } from "./exit.js";
import { execMode, runExec } from "./exec-stream.js";
import { globalsOf, withClient } from "./globals.js";
import { parseEnv, parseId } from "./instance-args.js";
import type { VerbModule } from "./program.js";

interface ExecOpts {
  env: string[];
  cwd?: string;
  user?: string;
  group?: string;
  forceInteractive?: boolean;
  forceNoninteractive?: boolean;
  disableStdin?: boolean;
  mode?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** The exec request for the command line (pure, unit-tested). */
export function execRequest(command: string[], opts: ExecOpts, interactive: boolean, localEnv: NodeJS.ProcessEnv = process.env): InstanceExecPost {
  if (command.length === 0) throw new UsageError("No command given: lodge exec NAME -- COMMAND [ARGS…]");
  const environment = parseEnv(opts.env);
  // As lxc: a terminal session gets the local TERM unless --env sets one.
  if (interactive && localEnv.TERM && !("TERM" in environment)) environment.TERM = localEnv.TERM;
  const req: InstanceExecPost = { command, environment };
  if (opts.cwd !== undefined) {
    if (!opts.cwd.startsWith("/")) throw new UsageError(`Invalid --cwd "${opts.cwd}": the directory must be absolute`);
    req.cwd = opts.cwd;
  }
  if (opts.user !== undefined) req.user = parseId(opts.user, "--user");
  if (opts.group !== undefined) req.group = parseId(opts.group, "--group");
  return req;
}

function registerExec(program: Command): void {
  program
    .command("exec")
    .description("Run a command in an instance; its exit code is lodge's")
    .argument("<instance>", "Instance name")
    .argument("<command...>", "Command and arguments (after --)")
    .option("--env <key=value>", "Environment variable for the command (repeatable)", collect, [])
    .option("--cwd <dir>", "Directory to run the command in")
    .option("--user <uid>", "User ID to run the command as")
    .option("--group <gid>", "Group ID to run the command as")
    .option("-t, --force-interactive", "Use a terminal (pty) even if stdin or stdout is not one")
    .option("-T, --force-noninteractive", "No terminal: separate stdout and stderr")
    .option("-n, --disable-stdin", "Give the command an empty stdin (do not read ours)")
    .option("--mode <mode>", "auto, interactive or non-interactive (as lxc's --mode)")
    .addHelpText("after", "\nExamples:\n  lodge exec c1 -- sh -c 'echo hi'\n  lodge exec c1 --env FOO=bar --cwd /tmp -- env\n  lodge exec c1 -- sh        # interactive shell")
    .action(async (name: string, command: string[], opts: ExecOpts, c: Command) => {
      if (opts.forceInteractive && opts.forceNoninteractive) throw new UsageError("-t and -T contradict each other");
      if (opts.mode && !["auto", "interactive", "non-interactive"].includes(opts.mode))
        throw new UsageError(`Invalid --mode "${opts.mode}": use auto, interactive or non-interactive`);
      const mode = execMode({
        forceInteractive: opts.forceInteractive || opts.mode === "interactive",
        forceNonInteractive: opts.forceNoninteractive || opts.mode === "non-interactive",
        noStdin: opts.disableStdin,
      });
      const req = execRequest(command, opts, mode.interactive);
      const code = await withClient(globalsOf(c), (client) => runExec(client, name, req, mode));
      if (code !== 0) throw new SilentFailure(code as ExitCode);
    });
}

export function verb(name: string): VerbModule {
  if (name !== "exec") throw new Error(`instance-exec: no verb "${name}"`);
  return { register: registerExec };
}
