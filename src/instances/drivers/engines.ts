/**
 * Every instance engine behind one face. The instances service, the lifecycle and the routes
 * call this, never an engine, and it hands each call to the engine that runs the instance:
 * liblxc for containers, QEMU for virtual machines. Calls by name find the engine from the
 * instance's type, which it learns from the records at daemon start (adopt) and from each
 * create; a spec says its own kind (a VM's has a root disk, a container's a rootfs tree).
 * Nothing above this file branches on an instance's type to pick an engine.
 */
import type { Readable } from "node:stream";
import type { ResourceLimits, RunConfig } from "../runconfig.js";
import {
  InstanceDriverError,
  type ContainerDriver,
  type ContainerSpec,
  type DriverCapabilities,
  type ExecProcess,
  type ExecRequest,
  type HotplugResult,
  type InstanceDriver,
  type InstanceState,
  type InstanceStatus,
  type InstanceType,
  type StartResult,
  type StopOptions,
  type VmDriver,
  type VmSpec,
} from "../driver.js";
import type { GuestAgent } from "./qemu/agent-api.js";

export type AnySpec = ContainerSpec | VmSpec;

export function isVmSpec(spec: AnySpec): spec is VmSpec {
  return "rootDisk" in spec;
}

/** A running instance's console as a byte stream both ways. */
export interface ConsoleStream {
  output: Readable;
  write(data: Buffer): void;
  resize(cols: number, rows: number): void;
  close(): void;
}

export class InstanceEngines implements InstanceDriver<AnySpec> {
  readonly type = "container" as const;
  private readonly types = new Map<string, InstanceType>();

  constructor(
    readonly container: ContainerDriver,
    readonly vm?: VmDriver,
  ) {}

  /** The container engine's capabilities: the baseline every caller may rely on. */
  get capabilities(): DriverCapabilities {
    return this.container.capabilities;
  }

  /** Whether instances of this type can run here. */
  supports(type: InstanceType): boolean {
    return type === "container" || !!this.vm;
  }

  /** What the engine of an instance type can do (VMs: have no id map, apply templates inside). */
  capabilitiesOf(type: InstanceType): DriverCapabilities {
    return type === "virtual-machine" ? this.vmEngine().capabilities : this.container.capabilities;
  }

  /** Records each existing instance's type (at daemon start). */
  adopt(instances: Iterable<{ name: string; type: InstanceType }>): void {
    for (const i of instances) this.types.set(i.name, i.type);
  }

  typeOf(name: string): InstanceType {
    return this.types.get(name) ?? "container";
  }

  private engine(name: string): InstanceDriver<ContainerSpec> | InstanceDriver<VmSpec> {
    if (this.typeOf(name) === "virtual-machine") return this.vmEngine();
    return this.container;
  }

  private vmEngine(): VmDriver {
    if (!this.vm) throw new InstanceDriverError("Virtual machines are not available on this host: QEMU (qemu-system-x86_64) is not installed");
    return this.vm;
  }

  /** The engines that can run here, for GET /1.0 (environment.driver). */
  engines(): InstanceDriver<ContainerSpec | VmSpec>[] {
    return this.vm ? [this.container, this.vm as InstanceDriver<ContainerSpec | VmSpec>] : [this.container];
  }

  async info() {
    return this.container.info();
  }

  async init(): Promise<number> {
    return (await this.container.init()) + (this.vm ? await this.vm.init() : 0);
  }

  async create(spec: AnySpec): Promise<void> {
    if (isVmSpec(spec)) {
      await this.vmEngine().create(spec);
      this.types.set(spec.name, "virtual-machine");
    } else {
      await this.container.create(spec);
      this.types.set(spec.name, "container");
    }
  }

  start(spec: AnySpec): Promise<StartResult> {
    return isVmSpec(spec) ? this.vmEngine().start(spec) : this.container.start(spec);
  }

  stop(name: string, opts?: StopOptions): Promise<void> {
    return this.engine(name).stop(name, opts);
  }

  freeze(name: string): Promise<void> {
    return this.engine(name).freeze(name);
  }

  unfreeze(name: string): Promise<void> {
    return this.engine(name).unfreeze(name);
  }

  state(name: string): Promise<InstanceState> {
    return this.engine(name).state(name);
  }

  status(name: string): Promise<{ status: InstanceStatus; pid: number }> {
    if (this.typeOf(name) === "virtual-machine" && !this.vm) return Promise.resolve({ status: "Error", pid: 0 });
    return this.engine(name).status(name);
  }

  exec(name: string, req: ExecRequest): Promise<ExecProcess> {
    return this.engine(name).exec(name, req);
  }

  watchStop(name: string, onMaybeStopped: () => void): () => void {
    if (this.typeOf(name) === "virtual-machine" && !this.vm) return () => {};
    return this.engine(name).watchStop(name, onMaybeStopped);
  }

  async delete(name: string, opts?: { force?: boolean }): Promise<void> {
    await this.engine(name).delete(name, opts);
    this.types.delete(name);
  }

  /** Forgets a name whose instance is gone another way (a rename moves it). */
  rename(from: string, to: string): void {
    const t = this.types.get(from);
    this.types.delete(from);
    if (t) this.types.set(to, t);
  }

  consoleLogPath(name: string): string {
    return this.engine(name).consoleLogPath(name);
  }

  logPath(name: string): string {
    return this.engine(name).logPath(name);
  }

  /** Live limits: a container's change at once; a VM's wait for its next start. */
  async applyLimits(name: string, limits: ResourceLimits): Promise<void> {
    if (this.typeOf(name) === "virtual-machine") return;
    await this.container.applyLimits(name, limits);
  }

  /** Live device changes: a container's are applied; a VM's wait for its next start. */
  async hotplug(spec: AnySpec, from: RunConfig): Promise<HotplugResult> {
    if (isVmSpec(spec)) return { deferred: ["devices"] };
    return this.container.hotplug(spec, from);
  }

  /** Whether the instance's files and guest state are reached through a guest agent. */
  hasGuestAgent(name: string): boolean {
    return this.typeOf(name) === "virtual-machine";
  }

  /**
   * Where a running instance's files are reached from the host when not through its rootfs:
   * a VM's guest agent; undefined for a container (the file API enters its namespaces).
   */
  async guestAgent(name: string): Promise<GuestAgent | undefined> {
    if (this.typeOf(name) !== "virtual-machine") return undefined;
    return this.vmEngine().agent(name);
  }

  /** Ends the engines' connections to running instances (daemon shutdown); the instances run on. */
  close(): void {
    this.vm?.close();
  }

  /** A VM's serial console socket; undefined for a container (its console is liblxc's). */
  consoleSocket(name: string): string | undefined {
    if (this.typeOf(name) !== "virtual-machine") return undefined;
    return this.vmEngine().consoleSocket(name);
  }
}
