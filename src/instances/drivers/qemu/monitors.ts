/**
 * One QMP connection per running VM, shared by everything the driver does with it (commands,
 * status, stop watches). QEMU serves one monitor client at a time, so connecting per call would
 * queue behind our own open connection. A connection is tied to the QEMU process it was made
 * to (pid): a new QEMU of the same VM gets a new one, a closed one is made again on next use.
 */
import { QmpClient } from "./qmp.js";

interface Entry {
  pid: number;
  client: Promise<QmpClient>;
}

export class Monitors {
  private readonly byName = new Map<string, Entry>();

  /** The monitor of the QEMU `pid` serving `socket`, connected when needed. */
  get(name: string, pid: number, socket: string): Promise<QmpClient> {
    const e = this.byName.get(name);
    if (e && e.pid === pid) {
      return e.client.then(
        (c) => (c.closed ? this.connect(name, pid, socket) : c),
        () => this.connect(name, pid, socket),
      );
    }
    if (e) void e.client.then((c) => c.close(), () => undefined);
    return this.connect(name, pid, socket);
  }

  private connect(name: string, pid: number, socket: string): Promise<QmpClient> {
    const client = QmpClient.connect(socket);
    const entry = { pid, client };
    this.byName.set(name, entry);
    client.then(
      (c) => c.once("close", () => this.byName.get(name) === entry && this.byName.delete(name)),
      () => this.byName.get(name) === entry && this.byName.delete(name),
    );
    return client;
  }

  /** Closes and forgets the VM's monitor. */
  drop(name: string): void {
    const e = this.byName.get(name);
    this.byName.delete(name);
    if (e) void e.client.then((c) => c.close(), () => undefined);
  }

  /** Closes every monitor (the driver's end, as a lodged that stops). */
  closeAll(): void {
    for (const name of [...this.byName.keys()]) this.drop(name);
  }
}
