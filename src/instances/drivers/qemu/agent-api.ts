/**
 * The guest agent as lodged sees it. Two implementations sit behind this one interface:
 * Lodge's own agent (a static binary delivered on the config drive at every boot, started by
 * the image's loader, speaking Lodge's framed protocol over the virtio-serial port
 * `org.lodge.agent.0`), and qemu-guest-agent (`org.qemu.guest_agent.0`) for images without
 * the loader, which can do everything but a pty and says so.
 *
 * The QEMU driver makes the chardev a unix socket that QEMU serves and connects to it; one
 * connection carries every concurrent exec and file call (the protocol multiplexes them), and
 * a reconnect after a lodged restart finds the agent again.
 */
import type { Readable } from "node:stream";
import type { ExecProcess, ExecRequest, NetworkInterfaceState } from "../../driver.js";
import type { CreateOptions, FileStat, WriteOptions } from "../../files/fileio.js";

export interface GuestInfo {
  /** Which agent answers: Lodge's own, or qemu-guest-agent. */
  agent: "lodge" | "qemu-ga";
  /** The agent's version. */
  version: string;
  /** From the guest's os-release and uname: LXD's state.os, os_version, kernel_version. */
  os: string;
  osVersion: string;
  kernelVersion: string;
  hostname: string;
}

export interface GuestState {
  /** The guest's interfaces with their addresses and counters (LXD's state.network). */
  network: Record<string, NetworkInterfaceState>;
  /** Memory as the guest sees it (MemTotal - MemAvailable), in bytes. */
  memory: { usage: number; total: number };
  processes: number;
}

export interface GuestAgent {
  /** Resolves once the agent answered (its hello), or rejects after timeoutMs. */
  ready(timeoutMs: number): Promise<GuestInfo>;
  /** Runs a command in the guest; a pty request on qemu-guest-agent is refused, saying so. */
  exec(req: ExecRequest): Promise<ExecProcess>;
  stat(path: string): Promise<FileStat>;
  read(path: string): Promise<Readable>;
  write(path: string, data: Readable | Buffer, opts?: WriteOptions): Promise<void>;
  mkdir(path: string, opts?: CreateOptions): Promise<void>;
  symlink(target: string, path: string, opts?: Omit<CreateOptions, "mode">): Promise<void>;
  delete(path: string): Promise<void>;
  state(): Promise<GuestState>;
  /** Ends the connection; running execs end with it. */
  close(): void;
}
