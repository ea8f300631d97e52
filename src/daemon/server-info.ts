import type { ServerEnvironment, ServerUntrusted, StorageDriverInfo } from "../api/server.js";
import { hostFacts } from "../sys/host.js";
import { API_VERSION, LODGE_VERSION } from "../version.js";
import { API_EXTENSIONS } from "./extensions.js";

/** Composes GET /1.0 from host facts and what the daemon's modules report about themselves. */
export class ServerInfo {
  constructor(
    private readonly opts: {
      /** Storage drivers usable on this host (filled in by the storage module). */
      storageDrivers: () => Promise<StorageDriverInfo[]>;
      /** The instance drivers registered; those that can run instances here are listed. */
      instanceDrivers: readonly { info(): Promise<{ name: string; version: string } | undefined> }[];
      addresses: () => string[];
      certificate: () => { pem: string; fingerprint: string };
    },
  ) {}

  untrusted(trusted: boolean): ServerUntrusted {
    return {
      api_extensions: [...API_EXTENSIONS],
      api_status: "stable",
      api_version: API_VERSION,
      auth: trusted ? "trusted" : "untrusted",
      public: false,
      auth_methods: ["tls"],
    };
  }

  async environment(project: string): Promise<ServerEnvironment> {
    const h = await hostFacts();
    // Only drivers that are registered and operational (LXD's server_instance_driver_operational).
    const infos = await Promise.all(this.opts.instanceDrivers.map((d) => d.info().catch(() => undefined)));
    const drivers = infos.filter((i) => i !== undefined).map((i) => [i.name, i.version] as const);
    const storage = await this.opts.storageDrivers();
    const cert = this.opts.certificate();
    return {
      addresses: this.opts.addresses(),
      architectures: h.architectures,
      certificate: cert.pem,
      certificate_fingerprint: cert.fingerprint,
      driver: drivers.map((d) => d[0]).join(" | "),
      driver_version: drivers.map((d) => d[1]).join(" | "),
      firewall: h.firewall,
      kernel: h.kernel,
      kernel_architecture: h.kernelArchitecture,
      kernel_features: h.kernelFeatures,
      kernel_version: h.kernelVersion,
      lxc_features: h.lxcFeatures,
      os_name: h.osName,
      os_version: h.osVersion,
      project,
      server: "lodge",
      server_clustered: false,
      server_event_mode: "full-mesh",
      server_name: h.hostname,
      server_pid: process.pid,
      server_version: LODGE_VERSION,
      storage: storage.map((s) => s.name).join(" | "),
      storage_version: storage.map((s) => s.version).join(" | "),
      storage_supported_drivers: storage.map((s) => ({ Name: s.name, Version: s.version, Remote: s.remote })),
    };
  }
}
