import type { RawData, WebSocket } from "ws";
import { newSecret } from "../../core/operations.js";

/**
 * The websockets of an exec or console operation: one secret per stream ("0", "1", "2",
 * "control"), handed out in the operation's metadata as `fds`, each usable once.
 */
export class StreamSockets {
  readonly secrets: Record<string, string>;
  readonly sockets = new Map<string, WebSocket>();

  constructor(readonly names: readonly string[]) {
    this.secrets = Object.fromEntries(names.map((n) => [n, newSecret()]));
  }

  /** Registers a connecting socket; the stream it opens, or undefined for a bad or used secret. */
  accept(secret: string, ws: WebSocket): string | undefined {
    const name = this.names.find((n) => this.secrets[n] === secret);
    if (!name || this.sockets.has(name)) return undefined;
    this.sockets.set(name, ws);
    return name;
  }

  get(name: string): WebSocket | undefined {
    return this.sockets.get(name);
  }
}

/** A websocket message as one Buffer, whatever form `ws` delivered it in. */
export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data as ArrayBuffer);
}
