/**
 * Containers made straight with the liblxc driver (no daemon), for driver-level tests: each
 * test's container has its own rootfs copy of one busybox image built per test file, and is
 * removed in t.after whether the test passes or not (processes, cgroups, directories).
 */
import { after, type TestContext } from "node:test";
import { execFile } from "node:child_process";
import { chmod, lstat, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildBusyboxRootfs } from "../../src/images/builder/busybox.js";
import { LxcDriver, type LxcDriverOptions } from "../../src/instances/drivers/lxc/driver.js";
import type { ContainerSpec, ExecRequest } from "../../src/instances/driver.js";
import { emptyRunConfig, type RunConfig } from "../../src/instances/runconfig.js";
import { allocateIdmap, readHostPool, type IdmapEntry } from "../../src/sys/idmap.js";
import { Cgroup, cgroupLayout } from "../../src/sys/cgroup.js";

export const execFileP = promisify(execFile);
export const base = await mkdtemp(join(tmpdir(), "lodge-lxcdrv-"));
after(() => rm(base, { recursive: true, force: true }));
await chmod(base, 0o711); // an unprivileged container's root must pass through to its rootfs
export const lxcpath = join(base, "lxc");
export const image = join(base, "image");
await buildBusyboxRootfs(image, { hostname: "busybox" });
export const pool = await readHostPool();
export const sharedMap = allocateIdmap(pool, { isolated: false }).entries;
let seq = 0;

export interface Made {
  driver: LxcDriver;
  spec: ContainerSpec;
  name: string;
}

/** A container with its own rootfs copy, created (and started unless start=false); removed in t.after. */
export async function container(
  t: TestContext,
  opts: { start?: boolean; run?: Partial<RunConfig>; driver?: Partial<LxcDriverOptions>; idmap?: IdmapEntry[]; privileged?: boolean } = {},
): Promise<Made> {
  const name = `lodge-t${process.pid}-${++seq}`;
  const rootfs = join(base, `rootfs-${name}`);
  await execFileP("cp", ["-a", "--reflink=auto", image, rootfs]);
  const driver = new LxcDriver({ lxcpath, logLevel: "INFO", ...opts.driver });
  const spec: ContainerSpec = {
    name,
    rootfs,
    privileged: opts.privileged ?? false,
    idmap: opts.privileged ? undefined : (opts.idmap ?? sharedMap),
    run: { ...emptyRunConfig(), ...opts.run },
  };
  t.after(async () => {
    await driver.delete(name, { force: true });
    await rm(rootfs, { recursive: true, force: true });
  });
  await driver.create(spec);
  if (opts.start !== false) await driver.start(spec);
  return { driver, spec, name };
}

export async function sh(m: Made, script: string, req: Partial<ExecRequest> = {}, input?: string) {
  const p = await m.driver.exec(m.name, { command: ["/bin/sh", "-c", script], env: { PATH: "/bin:/sbin:/usr/bin" }, ...req });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  p.stdout.on("data", (c: Buffer) => out.push(c));
  p.stderr?.on("data", (c: Buffer) => err.push(c));
  p.stdin.end(input ?? "");
  const { code } = await p.exited;
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** What a container leaves on the host: its directory, liblxc processes, cgroups. */
export async function leftovers(name: string): Promise<string[]> {
  const found: string[] = [];
  if (await lstat(join(lxcpath, name)).catch(() => undefined)) found.push(`dir ${join(lxcpath, name)}`);
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replace(/\0/g, " ");
    if (cmd.includes(lxcpath) && cmd.includes(name)) found.push(`process ${pid}: ${cmd}`);
  }
  for (const dir of await cgroupDirs(name)) {
    if (await lstat(dir).catch(() => undefined)) found.push(`cgroup ${dir}`);
  }
  return found;
}

/**
 * Where liblxc puts a container's cgroups (lxc.payload.NAME, lxc.monitor.NAME), on whatever
 * layout the host has: in each v1 hierarchy and in the unified one, at its root or below the
 * cgroup of the process that started it (this test process).
 */
export async function cgroupDirs(name: string): Promise<string[]> {
  const layout = await cgroupLayout();
  const own = await Cgroup.ofPid(process.pid);
  const parents = new Set<string>();
  for (const [c, mount] of Object.entries(layout.v1)) {
    parents.add(mount!);
    const rel = own.rel.v1[c];
    if (rel !== undefined) parents.add(join(mount!, rel));
  }
  if (layout.unified) {
    parents.add(layout.unified);
    if (own.rel.unified !== undefined) parents.add(join(layout.unified, own.rel.unified));
  }
  return [...parents].flatMap((p) => [join(p, `lxc.payload.${name}`), join(p, `lxc.monitor.${name}`)]);
}

/** Host pids of the lodge-execd processes in the pid namespace of a container's init. */
export async function agentsOf(init: number): Promise<number[]> {
  const ns = await readlink(`/proc/${init}/ns/pid`);
  const out: number[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    if (!stat.includes("(lodge-execd)") || / [ZX] /.test(stat.slice(stat.lastIndexOf(")")))) continue;
    if ((await readlink(`/proc/${p}/ns/pid`).catch(() => "")) === ns) out.push(Number(p));
  }
  return out;
}
