/**
 * The shape of `lodge`: its global options and the table of verbs, each loaded on demand.
 * Side-effect free, so the completion generator can build the whole tree from it.
 */
import { Command, Option } from "commander";
import { LODGE_VERSION } from "../version.js";
import { EXIT_CODES_HELP } from "./exit.js";
import { FORMATS } from "./format.js";

/** What a verb module exports: it adds its command (and subcommands) to the program. */
export interface VerbModule {
  register(program: Command): void;
}

interface Verb {
  name: string;
  summary: string;
  load: () => Promise<VerbModule>;
}

/** Every verb, in the order `lodge --help` lists them. */
export const VERBS: Verb[] = [
  // `info NAME` shows an instance; without a name, the server (instance-info.ts reuses info.ts).
  { name: "info", summary: "Show the server's or an instance's information", load: () => import("./instance-info.js").then((m) => m.verb("info")) },
  { name: "version", summary: "Show the client and server versions", load: () => import("./version.js") },
  { name: "operation", summary: "List, show and cancel background operations", load: () => import("./operation.js") },
  { name: "monitor", summary: "Print the server's events as they happen", load: () => import("./monitor.js") },
  { name: "query", summary: "Send a raw request to the API", load: () => import("./query.js") },
  { name: "warning", summary: "List, acknowledge and delete warnings", load: () => import("./warning.js") },
  { name: "launch", summary: "Create and start an instance from an image", load: () => import("./instance-create.js").then((m) => m.verb("launch")) },
  { name: "init", summary: "Create an instance from an image; without one, set up the server (--auto, --preseed, --dump)", load: () => import("./instance-create.js").then((m) => m.verb("init")) },
  { name: "list", summary: "List instances", load: () => import("./instance-list.js").then((m) => m.verb("list")) },
  { name: "start", summary: "Start instances", load: () => import("./instance-lifecycle.js").then((m) => m.verb("start")) },
  { name: "stop", summary: "Stop instances", load: () => import("./instance-lifecycle.js").then((m) => m.verb("stop")) },
  { name: "restart", summary: "Restart instances", load: () => import("./instance-lifecycle.js").then((m) => m.verb("restart")) },
  { name: "pause", summary: "Pause (freeze) instances", load: () => import("./instance-lifecycle.js").then((m) => m.verb("pause")) },
  { name: "resume", summary: "Resume paused instances", load: () => import("./instance-lifecycle.js").then((m) => m.verb("resume")) },
  { name: "delete", summary: "Delete instances", load: () => import("./instance-lifecycle.js").then((m) => m.verb("delete")) },
  { name: "rename", summary: "Rename an instance", load: () => import("./instance-lifecycle.js").then((m) => m.verb("rename")) },
  { name: "move", summary: "Rename an instance or snapshot, or move an instance to another storage pool (-s)", load: () => import("./instance-copy.js").then((m) => m.verb("move")) },
  { name: "copy", summary: "Copy an instance or a snapshot into a new instance", load: () => import("./instance-copy.js").then((m) => m.verb("copy")) },
  { name: "snapshot", summary: "Take a snapshot of an instance", load: () => import("./instance-snapshot.js").then((m) => m.verb("snapshot")) },
  { name: "restore", summary: "Restore an instance from a snapshot", load: () => import("./instance-snapshot.js").then((m) => m.verb("restore")) },
  { name: "exec", summary: "Run a command in an instance", load: () => import("./instance-exec.js").then((m) => m.verb("exec")) },
  { name: "console", summary: "Attach to an instance's console, or show its log", load: () => import("./instance-console.js").then((m) => m.verb("console")) },
  { name: "file", summary: "Push, pull, delete and edit files in instances", load: () => import("./instance-file.js").then((m) => m.verb("file")) },
  { name: "config", summary: "Manage instance configuration and devices", load: () => import("./instance-config.js").then((m) => m.verb("config")) },
  { name: "profile", summary: "Manage profiles and the profiles of instances", load: () => import("./profile.js") },
  { name: "storage", summary: "Manage storage pools and volumes: create, attach, snapshot, copy and move volumes", load: () => import("./storage.js") },
  { name: "network", summary: "Manage networks, their forwards, and attach instances and profiles to them", load: () => import("./network.js") },
  { name: "export", summary: "Export an instance as a backup tarball (LXD's format)", load: () => import("./backup.js").then((m) => m.verb("export")) },
  { name: "import", summary: "Create an instance from a backup tarball", load: () => import("./backup.js").then((m) => m.verb("import")) },
  { name: "publish", summary: "Make an image from an instance", load: () => import("./publish.js") },
  { name: "image", summary: "Manage images: list, import, export, copy from remotes, build", load: () => import("./image.js") },
  { name: "remote", summary: "Manage the remote image servers this client knows", load: () => import("./remote.js") },
  { name: "admin", summary: "Administer the daemon (waitready)", load: () => import("./admin.js") },
  { name: "completion", summary: "Print a shell completion script", load: () => import("./completion.js") },
];

/** Global options that take a value, so their value is not mistaken for the verb. */
const VALUE_OPTIONS = new Set(["--format", "--project"]);

/** The verb named on the command line (the first word that is not an option), if any. */
export function verbOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return args[i + 1];
    if (VALUE_OPTIONS.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith("-")) continue;
    // `lodge help operation` shows the help of operation: load that one.
    return a === "help" ? (args[i + 1] ?? a) : a;
  }
  return undefined;
}

/** The program with its global options and every verb listed; only `load`ed verbs are complete. */
export function newProgram(): Command {
  const program = new Command("lodge")
    .description("Manage system containers and virtual machines through lodged")
    .version(LODGE_VERSION, "--version", "Print the client's version")
    .addOption(new Option("--format <format>", "Output format").choices(FORMATS).default("table"))
    .option("--project <name>", "Project to work in (default: the server's default project)")
    .helpOption("-h, --help", "Show help for a command")
    .helpCommand("help [command]", "Show help for a command")
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", EXIT_CODES_HELP);
  // Every subcommand inherits these settings (commander copies them on .command()).
  program.configureHelp({ showGlobalOptions: true });
  return program;
}
