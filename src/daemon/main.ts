import { parseArgs } from "node:util";
import { lodgeDir } from "../api/paths.js";
import { LODGE_VERSION } from "../version.js";
import { shutdown } from "./shutdown-client.js";
import { DirectoryBusy } from "./lock.js";
import { parseLogLevel } from "../core/logger.js";

const HELP = `Usage: lodged [options]
       lodged shutdown [--dir DIR] [--timeout SECONDS]

The Lodge daemon: runs containers and virtual machines and serves the LXD-compatible
REST API on $LODGE_DIR/unix.socket (default /var/lib/lodge).

Instances keep running when lodged stops or restarts. \`lodged shutdown\` is for when the
host goes down: the running daemon stops every instance (boot.stop.priority order, each
given boot.host_shutdown_timeout seconds, at most --timeout) and exits; they start again
with the daemon.

Options:
  --dir DIR          state directory (default: $LODGE_DIR or /var/lib/lodge)
  --group NAME       group allowed to use the socket (mode 0660)
  --log-level LEVEL  debug, info, warn or error (default: info; $LODGE_LOG_LEVEL)
  --debug            same as --log-level debug
  --version          print the version and exit
  -h, --help         show this help

Logs go to stderr and to DIR/lodged.log.`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        dir: { type: "string" },
        group: { type: "string" },
        "log-level": { type: "string" },
        debug: { type: "boolean" },
        version: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        timeout: { type: "string" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    process.stderr.write(`lodged: ${(e as Error).message}\nTry 'lodged --help'.\n`);
    return 2;
  }
  const command = args.positionals[0];
  if (command !== undefined && (command !== "shutdown" || args.positionals.length > 1)) {
    process.stderr.write(`lodged: unknown command "${args.positionals.join(" ")}"\nTry 'lodged --help'.\n`);
    return 2;
  }
  if (args.values.timeout !== undefined && command !== "shutdown") {
    process.stderr.write("lodged: --timeout goes with `lodged shutdown`\n");
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  return command === "shutdown" ? shutdown(args.values.dir ?? lodgeDir(), args.values.timeout) : serve(args.values);
}

async function serve(args: { dir?: string; group?: string; "log-level"?: string; debug?: boolean; version?: boolean }): Promise<number> {
  if (args.version) {
    process.stdout.write(LODGE_VERSION + "\n");
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      "lodged: must run as root: it creates containers, mounts, cgroups and network devices.\n" +
        "Start it with sudo, or as a systemd service.\n",
    );
    return 1;
  }
  const level = args.debug ? "debug" : parseLogLevel(args["log-level"] ?? process.env.LODGE_LOG_LEVEL, "info");
  const dir = args.dir ?? lodgeDir();

  // Loaded after argument parsing so --version and --help stay instant.
  const { Daemon } = await import("./daemon.js");
  let daemon;
  try {
    daemon = await Daemon.start({ dir, logLevel: level, stderr: true, socketGroup: args.group });
  } catch (e) {
    const msg = e instanceof DirectoryBusy ? e.message : `failed to start: ${(e as Error).message}`;
    process.stderr.write(`lodged: ${msg}\n`);
    return 1;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      daemon.log.info("signal received, shutting down", { signal: sig });
      daemon.stop().then(
        () => resolve(0),
        (e: Error) => {
          process.stderr.write(`lodged: error during shutdown: ${e.message}\n`);
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    void daemon.exitRequested.then(() => stop("shutdown request"));
  });
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`lodged: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
