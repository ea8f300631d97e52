/**
 * A VM's serial console: QEMU serves it on a unix socket (a chardev), and attaching is a
 * connection to it. Detaching closes the connection; the console and the guest stay.
 */
import { connectUnix } from "../sys/unix-socket.js";
import type { ConsoleProcess } from "./console.js";

export async function attachSocketConsole(path: string): Promise<ConsoleProcess> {
  const sock = await connectUnix(path).catch((e: Error) => {
    throw new Error(`cannot attach to the console: ${e.message}`);
  });
  const exited = new Promise<void>((done) => sock.once("close", () => done()));
  sock.on("error", () => sock.destroy());
  return {
    stdin: sock,
    stdout: sock,
    exited,
    // A serial line has no window size; the guest's getty keeps its own.
    resize: async () => {},
    close: () => sock.destroy(),
  };
}
