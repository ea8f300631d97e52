/**
 * `lodge console NAME`: the instance's console over the /console websocket (type ctrl+a q to
 * detach, as lxc); `--show-log` prints the console log instead.
 */
import type { Command } from "commander";
import { ApiError } from "../api/errors.js";
import type { Operation } from "../api/operation.js";
import type { LodgeClient } from "../client/client.js";
import { attachTerminal, connectFds, receive, resumeAll, sendControl, terminalSize } from "./exec-stream.js";
import { globalsOf, withClient } from "./globals.js";
import { getBytes } from "./http-stream.js";
import { instanceUrl } from "./instance-ref.js";
import type { VerbModule } from "./program.js";

/** The console log: LXD's GET /console, else the log file the daemon keeps. */
export async function consoleLog(c: LodgeClient, name: string): Promise<Buffer> {
  const direct = await getBytes(c, instanceUrl(name, "/console"));
  if (direct.status === 200) return direct.body;
  const file = await getBytes(c, instanceUrl(name, "/logs/console.log"));
  if (file.status === 200) return file.body;
  // An unknown instance says so; a missing log is simply empty.
  const err = file.error ?? direct.error;
  if (file.status === 404 && /log file/i.test(err ?? "")) return Buffer.alloc(0);
  throw new ApiError(file.status, err ?? `cannot read the console log of "${name}" (${file.status})`);
}

/** ctrl+a then q detaches; ctrl+a twice sends one ctrl+a. */
export function detachFilter(onDetach: () => void): (chunk: Buffer) => Buffer | null {
  let armed = false;
  return (chunk) => {
    const out: number[] = [];
    for (const b of chunk) {
      if (armed) {
        armed = false;
        if (b === 0x71 /* q */) {
          onDetach();
          return out.length ? Buffer.from(out) : null;
        }
        out.push(0x01);
        if (b === 0x01) continue;
      } else if (b === 0x01) {
        armed = true;
        continue;
      }
      out.push(b);
    }
    return Buffer.from(out);
  };
}

async function attachConsole(c: LodgeClient, name: string): Promise<void> {
  const r = await c.raw<Operation>("POST", instanceUrl(name, "/console"), { type: "console", ...terminalSize(process.stdout) });
  if (r.body.type === "error") {
    if (r.status === 404 && !/instance/i.test(r.body.error))
      throw new ApiError(404, `This server has no interactive console yet: use lodge console ${name} --show-log`);
    throw new ApiError(r.body.error_code || r.status, r.body.error);
  }
  const op = r.body.metadata;
  const ws = await connectFds(c, op, ["control", "0"]);
  process.stderr.write("To detach from the console, press: <ctrl>+a q\n");
  let detach!: () => void;
  const detached = new Promise<void>((res) => (detach = res));
  const restore = attachTerminal(ws["0"]!, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, false, detachFilter(() => detach()));
  const onResize = () => {
    const { width, height } = terminalSize(process.stdout);
    sendControl(ws.control!, { command: "window-resize", args: { width: String(width), height: String(height) } });
  };
  process.on("SIGWINCH", onResize);
  const output = receive(ws["0"]!, process.stdout);
  resumeAll(ws);
  try {
    await Promise.race([detached, output]);
  } finally {
    process.off("SIGWINCH", onResize);
    restore();
    process.stdin.pause();
    for (const s of Object.values(ws)) s.close();
  }
}

function registerConsole(program: Command): void {
  program
    .command("console")
    .description("Attach to an instance's console (ctrl+a q detaches)")
    .argument("<instance>", "Instance name")
    .option("--show-log", "Print the console log instead of attaching")
    .option("--type <type>", "console (text) — vga is for VMs and not supported yet", "console")
    .action(async (name: string, opts: { showLog?: boolean; type: string }, cmd: Command) => {
      if (opts.type !== "console") throw new ApiError(400, `Console type "${opts.type}" is not supported: use console`);
      await withClient(globalsOf(cmd), async (c) => {
        if (opts.showLog) process.stdout.write(await consoleLog(c, name));
        else await attachConsole(c, name);
      });
    });
}

export function verb(name: string): VerbModule {
  if (name !== "console") throw new Error(`instance-console: no verb "${name}"`);
  return { register: registerConsole };
}
