/**
 * A command's own stdin, stdout and stderr inside the warm spare (worker.ts), which serves one
 * command after another: the descriptors the launcher passed become process.stdin/stdout/
 * stderr and the global console for the length of the command, made lazily as Node makes its
 * own, then flushed and closed. The spare's own 0/1/2 (/dev/null) are never touched, so
 * nothing of one command's streams reaches the next.
 */
import { Console } from "node:console";
import { closeSync, createReadStream, createWriteStream, fstatSync } from "node:fs";
import net from "node:net";
import tty from "node:tty";
import type { Readable, Writable } from "node:stream";

type Name = "stdin" | "stdout" | "stderr";

export interface CommandStdio {
  /** True when the command read from its stdin (made the stream). */
  readonly stdinUsed: boolean;
  /** Flushes what was written, closes the command's descriptors, and gives back Node's streams. */
  finish(): Promise<void>;
}

/** Node's own writable for a descriptor, by its kind (a terminal, a pipe or socket, a file). */
function writableFor(fd: number): Writable {
  if (tty.isatty(fd)) return new tty.WriteStream(fd);
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return new net.Socket({ fd, readable: false, writable: true });
  return createWriteStream("", { fd, autoClose: true });
}

function readableFor(fd: number): Readable {
  if (tty.isatty(fd)) return new tty.ReadStream(fd);
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return new net.Socket({ fd, readable: true, writable: false });
  return createReadStream("", { fd, autoClose: true });
}

/** Waits until everything written so far has left (or the reader is gone). */
function flushed(s: Writable): Promise<void> {
  if (s.destroyed || s.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    s.once("error", () => resolve());
    s.write("", () => resolve());
  });
}

/** Destroys a stream and waits until its descriptor is closed (at most a second). */
function closed(s: Readable | Writable): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    s.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    s.destroy();
  });
}

/** Makes fds [stdin, stdout, stderr] the process's standard streams until finish(). */
export function useCommandStdio(fds: readonly number[]): CommandStdio {
  const saved = new Map<Name, PropertyDescriptor | undefined>();
  const made = new Map<Name, Readable | Writable>();
  const names: Name[] = ["stdin", "stdout", "stderr"];
  names.forEach((name, i) => {
    saved.set(name, Object.getOwnPropertyDescriptor(process, name));
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: true,
      get() {
        let s = made.get(name);
        if (!s) {
          s = i === 0 ? readableFor(fds[0]!) : writableFor(fds[i]!);
          // A reader that went away (`| head`) ends the command's output, not the spare.
          s.on("error", () => undefined);
          made.set(name, s);
        }
        return s;
      },
    });
  });
  const savedConsole = globalThis.console;
  // The global console keeps the streams it first wrote to: each command gets its own.
  Object.defineProperty(globalThis, "console", {
    configurable: true,
    writable: true,
    value: new Console({ stdout: process.stdout, stderr: process.stderr }),
  });

  return {
    get stdinUsed() {
      return made.has("stdin");
    },
    async finish() {
      const stdin = made.get("stdin") as (Readable & { isTTY?: boolean; isRaw?: boolean; setRawMode?: (raw: boolean) => void }) | undefined;
      if (stdin?.isTTY && stdin.isRaw) stdin.setRawMode?.(false);
      await Promise.all(["stdout", "stderr"].map((n) => made.get(n as Name)).filter((s): s is Writable => !!s).map(flushed));
      // Each stream closes its descriptor (a file's through the thread pool): the spare checks
      // for leftovers once they are all closed.
      await Promise.all(
        names.map((name, i) => {
          const s = made.get(name);
          if (!s) {
            closeSync(fds[i]!);
            return undefined;
          }
          return closed(s);
        }),
      );
      for (const name of names) {
        const d = saved.get(name);
        if (d) Object.defineProperty(process, name, d);
      }
      Object.defineProperty(globalThis, "console", { configurable: true, writable: true, value: savedConsole });
    },
  };
}
