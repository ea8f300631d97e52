import { chmod, chown, mkdir, readFile, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { databasePath, logPath, pidPath, socketPath } from "../api/paths.js";
import { notFound } from "../api/errors.js";
import { ServerConfig } from "../config/server.js";
import { SqliteStore } from "../state/sqlite.js";
import { DEFAULT_POOL, StorageService } from "../storage/service.js";
import { ProfileStore } from "../profiles/store.js";
import { ProfileService } from "../profiles/service.js";
import { profileRoutes } from "./routes/profiles.js";
import { networkRoutes } from "./routes/networks.js";
import { storageRoutes } from "./routes/storage.js";
import { PoolService } from "../storage/pools.js";
import { CustomVolumes } from "../storage/custom-volumes.js";
import { hostName, instancePrefix, type InstanceRecord } from "../instances/record.js";
import { NetworkService } from "../networks/service.js";
import { NetworkForwards } from "../networks/forwards.js";
import { BridgeDriver } from "../networks/drivers/bridge.js";
import type { DocumentStore } from "../state/store.js";
import { hostFacts } from "../sys/host.js";
import { LODGE_VERSION } from "../version.js";
import { WarningService } from "../warnings/service.js";
import { EventHub } from "../core/events.js";
import { buildHttp } from "./http.js";
import { acquireDirLock } from "./lock.js";
import { fileSink, Logger, streamSink, type LogLevel } from "../core/logger.js";
import { OperationManager } from "../core/operations.js";
import { Revert } from "../core/revert.js";
import { ImageStore } from "../images/store.js";
import { ImageMaintenance } from "../images/maintenance.js";
import { ImageRefresher } from "../images/remotes/refresh.js";
import { remoteImageSources } from "../images/remotes/source.js";
import { LxcDriver } from "../instances/drivers/lxc/driver.js";
import { InstanceEngines } from "../instances/drivers/engines.js";
import { QemuDriver } from "../instances/drivers/qemu/driver.js";
import { attachSocketConsole } from "../instances/console-socket.js";
import { InstanceLifecycle } from "../instances/lifecycle.js";
import { InstanceService } from "../instances/service.js";
import { EphemeralReaper } from "../instances/ephemeral.js";
import { SnapshotService } from "../instances/snapshots/service.js";
import { InstanceCopier } from "../instances/copy.js";
import { PoolMover } from "../instances/move.js";
import { SnapshotScheduler } from "../instances/snapshots/schedule.js";
import { instanceSnapshotRoutes } from "./routes/instance-snapshots.js";
import { ContainerSpecs } from "../instances/spec.js";
import { instanceRoutes } from "./routes/instances.js";
import { importBackupHandler, instanceBackupRoutes } from "./routes/instance-backups.js";
import { BackupService } from "../backups/service.js";
import { publishSources } from "../instances/publish.js";
import { instanceStateRoutes } from "./routes/instance-state.js";
import { instanceFileRoutes } from "./routes/instance-files.js";
import { instanceConsoleRoutes } from "./routes/instance-console.js";
import { withContainerAliases } from "./routes/containers-alias.js";
import { attachConsole } from "../instances/console.js";
import { eventRoutes } from "./routes/events.js";
import { imageRoutes } from "./routes/images.js";
import { operationRoutes } from "./routes/operations.js";
import { rootRoutes } from "./routes/root.js";
import { serverRoutes } from "./routes/server.js";
import { warningRoutes } from "./routes/warnings.js";
import { resourceRoutes } from "./routes/resources.js";
import { internalRoutes } from "./routes/internal.js";
import { socketAnswers } from "./socket-probe.js";
import { ServerInfo } from "./server-info.js";

export interface DaemonOptions {
  dir: string;
  /** Minimum level written to stderr and the log file. */
  logLevel?: LogLevel;
  /** Write logs to stderr too (the foreground daemon does; in-process tests don't). */
  stderr?: boolean;
  /** Group that may use the socket (mode 0660); root's group when absent. */
  socketGroup?: string;
}

/** How long a graceful shutdown waits for running operations. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * The daemon: composes the state store, domain services and the HTTP server, and owns their
 * start and stop order. It holds no request logic of its own.
 */
export class Daemon {
  private constructor(
    readonly dir: string,
    readonly log: Logger,
    readonly store: DocumentStore,
    readonly events: EventHub,
    readonly operations: OperationManager,
    readonly config: ServerConfig,
    readonly warnings: WarningService,
    private readonly cleanup: Revert,
    /** Resolves when a client asked the daemon to exit (`lodged shutdown`). */
    readonly exitRequested: Promise<void>,
  ) {}

  /** The image housekeeping (cache expiry, auto-update), set once started; a round can be run through it. */
  imageMaintenance?: ImageMaintenance;
  /** Scheduled snapshots and expiry, set once started; a round can be run through it (tests). */
  snapshotScheduler?: SnapshotScheduler;

  get socket(): string {
    return socketPath(this.dir);
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const dir = opts.dir;
    const level = opts.logLevel ?? "info";
    const undo = new Revert();
    try {
      await mkdir(dir, { recursive: true, mode: 0o711 });
      await chmod(dir, 0o711);
      undo.add(await acquireDirLock(pidPath(dir), dir));

      const log = new Logger();
      if (opts.stderr) log.addSink(streamSink(process.stderr), level);
      const file = fileSink(logPath(dir));
      log.addSink(file.sink, level);
      undo.add(file.close);

      await mkdir(dirname(databasePath(dir)), { recursive: true, mode: 0o700 });
      await chmod(dirname(databasePath(dir)), 0o700);
      const store = SqliteStore.open(databasePath(dir));
      undo.add(() => store.close());

      const events = new EventHub();
      // Every log record is offered to /1.0/events listeners of type "logging" (at any level).
      log.addSink((r) => {
        if (events.hasListener("logging"))
          events.publish("logging", { message: r.message, level: r.level, context: r.context });
      });
      const operations = new OperationManager(events, log.child({ module: "operations" }));
      undo.add(() => operations.shutdown(SHUTDOWN_GRACE_MS));
      const config = new ServerConfig(store, events);
      const warnings = new WarningService(store, events);
      const images = new ImageStore({ dir, store, events });
      await images.init();
      const storage = new StorageService({ dir, store, images });
      images.onImageGone = (fp) => storage.releaseImage(fp);
      const lxc = new LxcDriver({ lxcpath: join(dir, "containers") });
      // VMs where QEMU is installed (its version also goes to GET /1.0).
      const qemu = new QemuDriver({ dir: join(dir, "virtual-machines") });
      const driver = new InstanceEngines(lxc, (await qemu.info()) ? qemu : undefined);
      undo.add(() => driver.close());
      driver.adopt((await store.list<InstanceRecord>(instancePrefix())).map(({ value: r }) => ({ name: hostName(r.project, r.name), type: r.type })));
      // Instance data is closed to host users (storage/drivers/dir.ts, lxc/host-checks.ts);
      // what an older Lodge left open is closed here, before anything else runs.
      const closed = (await storage.init()) + (await driver.init());
      if (closed) log.warn("closed instance directories that host users could reach", { count: closed });
      const profiles = new ProfileStore(store);
      await profiles.ensureDefault("default", DEFAULT_POOL);
      // Read lazily: the instance service is made below.
      const storageUsers = { records: (p?: string) => instances.records(p), layers: (r: InstanceRecord) => instances.layers(r), profiles: (p: string) => profiles.list(p) };
      const pools = new PoolService({ store, storage, users: storageUsers, events, log: log.child({ module: "storage" }) });
      const volumes = new CustomVolumes({ store, storage, users: storageUsers, events });
      await volumes.recover();
      const specs = new ContainerSpecs(profiles, volumes);
      const netDriver = new BridgeDriver({ runDir: join(dir, "networks"), log: log.child({ module: "networks" }) });
      const networks: NetworkService = new NetworkService({
        store,
        driver: netDriver,
        // Read lazily: the instance service is made just below.
        users: { records: (p) => instances.records(p), layers: (r) => instances.layers(r), profiles: (p) => profiles.list(p) },
        events,
        log: log.child({ module: "networks" }),
      });
      const forwards = new NetworkForwards({ store, driver: netDriver, networks });
      const instances: InstanceService = new InstanceService({
        networks,
        volumes,
        profiles,
        store,
        storage,
        images,
        driver,
        events,
        specs,
        log: log.child({ module: "instances" }),
        logsDir: join(dir, "logs"),
      });
      const reaper = new EphemeralReaper({ instances, driver, events, log: log.child({ module: "instances" }), stopped: (r): Promise<void> => lifecycle.noteStopped(r) });
      const lifecycle = new InstanceLifecycle({ store, storage, driver, instances, specs, events, log: log.child({ module: "instances" }), stops: reaper, beforeStart: (r) => networks.syncHosts(r.project) });
      await instances.recover();
      const snapshots = new SnapshotService({ store, storage, instances, driver, events, log: log.child({ module: "snapshots" }) });
      await snapshots.recover();
      const mover = new PoolMover({ store, storage, instances, driver, specs, events, log: log.child({ module: "instances" }) });
      await mover.recover();
      const copier = new InstanceCopier({ store, storage, instances, snapshots, driver, specs, profiles, events, networks });
      const backups = new BackupService({
        dir,
        store,
        storage,
        instances,
        profiles,
        events,
        // An export carries the instance's ready snapshots, oldest first, from their trees.
        snapshots: {
          list: async (project, instance) => {
            const r = await instances.record(project, instance);
            const ref = await storage.instanceVolume(r.pool, project, instance, r.type);
            const snaps = (await snapshots.list(project, instance)).sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
            return snaps.map((record) => ({ record, path: storage.snapshotPath(ref, record.name) }));
          },
        },
      });
      await backups.init();
      // Bridges, dnsmasq and NAT come back (after a host reboot, or a daemon that was killed)
      // before any instance starts on them.
      await networks.start();
      undo.add(() => networks.close());
      const profileService = new ProfileService({
        store,
        profiles,
        instances,
        events,
        networks,
        volumes,
        live: (before, after, layers) => lifecycle.applyLive(before, after, layers),
        running: async (r) => (await lifecycle.status(r)).status !== "Stopped",
        log: log.child({ module: "profiles" }),
      });
      // Before the API answers: ephemeral instances that stopped while lodged was away are gone.
      await reaper.boot();
      undo.add(() => reaper.close());
      const info = new ServerInfo({
        storageDrivers: () => storage.supportedDrivers(),
        instanceDrivers: driver.engines(),
        addresses: () => [],
        certificate: () => ({ pem: "", fingerprint: "" }),
      });

      const refresher = new ImageRefresher(images, events);
      const maintenance = new ImageMaintenance({
        images,
        config,
        refresh: (p, fp) => refresher.refresh(p, fp),
        log: log.child({ module: "images" }),
      });

      const ops = operationRoutes({ operations });
      let requestExit!: () => void;
      const exitRequested = new Promise<void>((r) => (requestExit = r));
      const http = buildHttp({
        routes: withContainerAliases([
          ...rootRoutes,
          ...serverRoutes({ config, info }),
          ...ops.routes,
          ...warningRoutes({ warnings }),
          ...resourceRoutes(),
          ...instanceRoutes({
            instances,
            lifecycle,
            operations,
            snapshots,
            copier,
            mover,
            backups,
            importBackup: importBackupHandler({ dir: backups.dir, store, instances, storage, snapshots, profiles, operations }),
          }),
          ...instanceSnapshotRoutes({ instances, snapshots, operations }),
          ...instanceBackupRoutes({ backups, operations }),
          ...profileRoutes({ profiles: profileService }),
          ...networkRoutes({ networks, forwards }),
          ...storageRoutes({ pools, volumes, operations }),
          ...instanceStateRoutes({ instances, lifecycle, operations, driver, logDir: (p, n) => instances.logDir(p, n) }),
          ...instanceFileRoutes({ instances, driver, events, volumePath: (r) => storage.instancePath(r.pool, r.project, r.name, r.type) }),
          ...instanceConsoleRoutes({ instances, driver, operations, events, attach: (host, cols, rows) => {
              const socket = driver.consoleSocket(host);
              return socket ? attachSocketConsole(socket) : attachConsole({ name: host, lxcpath: lxc.lxcpath, cols, rows });
            },
          }),
          ...imageRoutes({ images, operations, events, sources: {
              ...remoteImageSources(),
              ...publishSources({
                instances,
                storage,
                scratchDir: join(dir, "images"),
                running: async (r) => (await lifecycle.status(r)).status !== "Stopped",
                snapshot: async (project, name, snap) => {
                  const r = await instances.record(project, name);
                  const s = (await snapshots.list(project, name)).find((x) => x.name === snap);
                  if (!s) throw notFound(`Snapshot "${snap}" of instance "${name}" not found`);
                  const ref = await storage.instanceVolume(r.pool, project, name, r.type);
                  return { path: storage.snapshotPath(ref, snap), architecture: s.architecture, config: s.config };
                },
              }),
            }, refresh: (p, fp, op) => refresher.refresh(p, fp, op) }),
          ...internalRoutes({ lifecycle, exit: () => requestExit() }),
        ]),
        wsRoutes: [...eventRoutes({ events }), ...ops.ws],
        log: log.child({ module: "http" }),
        caller: () => ({ trusted: true, protocol: "unix", address: "@" }),
        project: (name) => {
          // Projects arrive with the projects capability; until then only "default" exists.
          if (name && name !== "default") throw notFound(`Project "${name}" not found`);
          return "default";
        },
      });
      undo.add(() => http.close());

      const sock = socketPath(dir);
      await removeStaleSocket(sock);
      await http.listen({ path: sock });
      undo.add(() => unlink(sock).catch(() => {}));
      await chmod(sock, 0o660);
      if (opts.socketGroup) await chown(sock, 0, await groupId(opts.socketGroup));
      maintenance.start();
      undo.add(() => maintenance.stop());
      const scheduler = new SnapshotScheduler({ instances, snapshots, status: (r) => lifecycle.status(r), log: log.child({ module: "snapshots" }) });
      scheduler.start();
      undo.add(() => scheduler.stop());

      // Work started in the background ends before anything below it (the store first) closes:
      // at stop, the boot signal aborts it, then it is waited for.
      const background: Promise<unknown>[] = [];
      undo.add(() => Promise.allSettled(background));
      const boot = new AbortController();
      undo.add(() => boot.abort());
      const daemon = new Daemon(dir, log, store, events, operations, config, warnings, undo.release(), exitRequested);
      daemon.imageMaintenance = maintenance;
      daemon.snapshotScheduler = scheduler;
      log.info("lodged started", { version: LODGE_VERSION, dir, socket: sock, pid: process.pid });
      // Instances that should run come up in the background; the API is already answering.
      // "autostart finished" tells an operator (and the tests) that boot-time starts are over.
      background.push(
        lifecycle.autostart(boot.signal).then(
          (started) => log.info("autostart finished", { started: started.length }),
          (e: Error) => log.error("autostart failed", { err: e.message }),
        ),
      );
      background.push(daemon.checkHost().catch((e: Error) => log.error("host check failed", { err: e.message })));
      return daemon;
    } catch (e) {
      await undo.run();
      throw e;
    }
  }

  /** Raises (or resolves) warnings about host tools Lodge relies on. */
  private async checkHost(): Promise<void> {
    const h = await hostFacts();
    const checks: [boolean, string, string][] = [
      [!!h.lxcVersion, "Missing liblxc", "liblxc's tools (lxc-start) were not found: containers cannot run. Install the lxc package."],
      [!!h.qemuVersion, "Missing QEMU", "qemu-system was not found: virtual machines cannot run. Install qemu-system-x86."],
    ];
    for (const [ok, type, msg] of checks) {
      if (ok) await this.warnings.resolve(type);
      else {
        await this.warnings.raise(type, msg, { severity: "high" });
        this.log.warn(msg);
      }
    }
  }

  async stop(): Promise<void> {
    this.log.info("lodged stopping");
    await this.cleanup.run();
  }
}

/** Removes a socket file left by a daemon that died, but refuses if something answers on it. */
async function removeStaleSocket(path: string): Promise<void> {
  if (await socketAnswers(path)) throw new Error(`${path} is in use by another process; is another lodged running on this directory?`);
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

async function groupId(name: string): Promise<number> {
  const groups = await readFile("/etc/group", "utf8");
  for (const line of groups.split("\n")) {
    const [n, , gid] = line.split(":");
    if (n === name && gid) return Number(gid);
  }
  throw new Error(`socket group "${name}" does not exist; create it (groupadd ${name}) or drop --group`);
}
