/**
 * Runs one `lodge` command line and resolves with its exit code. Start-up is kept minimal:
 * only commander and the verb table load before parsing; the module of the verb being run is
 * imported on demand, so `lodge info` never evaluates the code of `lodge monitor` (each verb is
 * its own chunk). Shared by the plain entry (main.ts) and the warm spare (worker.ts).
 */
import { CommanderError } from "commander";
import { ExitCode, reportError } from "./exit.js";
import { VERBS, newProgram, verbOf } from "./program.js";

export async function runCli(argv: string[]): Promise<number> {
  const program = newProgram();
  const wanted = verbOf(argv.slice(2));
  for (const v of VERBS) {
    if (v.name === wanted) (await v.load()).register(program);
    else program.command(v.name).description(v.summary);
  }
  try {
    await program.parseAsync(argv);
    return ExitCode.Ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version end parsing through the same path as mistakes; only mistakes are 2.
      if (e.exitCode === 0 || e.code === "commander.helpDisplayed" || e.code === "commander.version") return ExitCode.Ok;
      return ExitCode.Usage;
    }
    return reportError(e);
  }
}
