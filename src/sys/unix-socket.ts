import net from "node:net";

/** Connects to a unix socket; rejects with the connect error (ENOENT, ECONNREFUSED…). */
export function connectUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path);
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}
