/** `lodge`, the command-line client (see run.ts; native/launcher runs it warm). */
import { reportError } from "./exit.js";
import { runCli } from "./run.js";

// Exit straight away: the client's keep-alive sockets must not hold the process open.
runCli(process.argv).then(
  (code) => process.exit(code),
  (e) => process.exit(reportError(e)),
);
