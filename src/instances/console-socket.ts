/**
 * A VM's serial console: QEMU serves it on a unix socket (a chardev), and attaching is a
 * connection to it. Detaching closes the connection; the console and the guest stay.
 */
import { connect } from "node:net";
import type { ConsoleProcess } from "./console.js";

export function attachSocketConsole(path: string): Promise<ConsoleProcess> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const exited = new Promise<void>((done) => sock.once("close", () => done()));
    sock.once("error", (e) => reject(new Error(`cannot attach to the console: ${e.message}`)));
    sock.once("connect", () => {
      sock.removeAllListeners("error");
      sock.on("error", () => sock.destroy());
      resolve({
        stdin: sock,
        stdout: sock,
        exited,
        // A serial line has no window size; the guest's getty keeps its own.
        resize: async () => {},
        close: () => sock.destroy(),
      });
    });
  });
}
