/**
 * Plain QEMU for the VM agent tests: a VM booted straight from an image built by the image
 * builder (direct kernel boot from its metadata tarball, a qcow2 overlay on its rootfs.img, a
 * fresh config drive), with the agent's chardev socket, qga's and QMP's. Everything (the
 * process, sockets, disks) goes away in t.after, also when the test fails.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { parse as parseYaml } from "yaml";
import { run } from "../../src/sys/exec.js";
import { agentBinaryPath, makeConfigDrive } from "../../src/instances/drivers/qemu/config-drive.js";

export interface VmImage {
  meta: string;
  rootfs: string;
  /** The unpacked metadata tarball: metadata.yaml, boot/. */
  dir: string;
  properties: Record<string, string>;
}

export async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

export async function unpackVmImage(t: TestContext, meta: string, rootfs: string): Promise<VmImage> {
  const dir = await tempDir(t, "lodge-vmimg-");
  await run("tar", ["-xf", meta, "-C", dir]);
  const m = parseYaml(await readFile(path.join(dir, "metadata.yaml"), "utf8"));
  return { meta, rootfs, dir, properties: m.properties };
}

export interface Vm {
  proc: ChildProcess;
  pid: number;
  dir: string;
  agentSocket: string;
  qgaSocket: string;
  qmpSocket: string;
  consoleLog: string;
  /** When QEMU was started (performance.now()). */
  startedAt: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  qmp(command: string, args?: object): Promise<any>;
}

/** Boots the image under TCG (1 vCPU by default) with user-mode networking. */
export async function bootVm(t: TestContext, img: VmImage, o: { memoryMiB?: number; cpus?: number } = {}): Promise<Vm> {
  const dir = await tempDir(t, "lodge-vm-");
  await mkdir(dir, { recursive: true });
  const overlay = path.join(dir, "root.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.rootfs, overlay]);
  const drive = await makeConfigDrive(dir, agentBinaryPath());
  const agentSocket = path.join(dir, "agent.sock");
  const qgaSocket = path.join(dir, "qga.sock");
  const qmpSocket = path.join(dir, "qmp.sock");
  const consoleLog = path.join(dir, "console.log");
  const p = img.properties;
  const args = [
    "-accel", "tcg", "-nographic", "-nodefaults", "-no-user-config", "-machine", "q35", "-cpu", "max",
    "-smp", String(o.cpus ?? 1), "-m", String(o.memoryMiB ?? 384),
    "-kernel", path.join(img.dir, p["lodge.kernel"]!), "-initrd", path.join(img.dir, p["lodge.initrd"]!), "-append", p["lodge.cmdline"]!,
    "-drive", `file=${overlay},format=qcow2,if=virtio`,
    "-drive", `file=${drive},format=raw,if=virtio,readonly=on`,
    "-device", "virtio-serial-pci",
    "-chardev", `socket,id=agent,path=${agentSocket},server=on,wait=off`,
    "-device", "virtserialport,chardev=agent,name=org.lodge.agent.0",
    "-chardev", `socket,id=qga,path=${qgaSocket},server=on,wait=off`,
    "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
    "-qmp", `unix:${qmpSocket},server=on,wait=off`,
    "-serial", "stdio",
    "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=",
  ];
  const out = openSync(consoleLog, "w");
  const startedAt = performance.now();
  const proc = spawn("qemu-system-x86_64", args, { stdio: ["ignore", out, out] });
  closeSync(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGKILL");
      await exited;
    }
  });
  // QEMU makes its sockets before the guest runs; wait for them.
  for (let i = 0; i < 200; i++) {
    if (await readFile(qmpSocket).then(() => true, (e) => e.code !== "ENOENT")) break;
    if (proc.exitCode !== null) throw new Error(`qemu exited: ${await readFile(consoleLog, "utf8")}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { proc, pid: proc.pid!, dir, agentSocket, qgaSocket, qmpSocket, consoleLog, startedAt, exited, qmp: (c, a) => qmp(qmpSocket, c, a) };
}

/** One QMP command on a fresh connection (capabilities negotiated first). */
export function qmp(socket: string, command: string, args?: object): Promise<any> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socket);
    let buf = "";
    let step = 0;
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.QMP && step === 0) {
          step = 1;
          s.write(JSON.stringify({ execute: "qmp_capabilities" }) + "\n");
        } else if (step === 1 && "return" in msg) {
          step = 2;
          s.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n");
        } else if (step === 2 && ("return" in msg || "error" in msg)) {
          s.end();
          if (msg.error) reject(new Error(`QMP ${command}: ${msg.error.desc}`));
          else resolve(msg.return);
        }
      }
    });
    s.on("error", reject);
  });
}

/** VmRSS of a process in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** Waits until the file holds a match of re (the serial console log), or fails after ms. */
export async function waitForLog(file: string, re: RegExp, ms: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (re.test(await readFile(file, "utf8").catch(() => ""))) return performance.now();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${re} did not appear in ${file} within ${ms} ms:\n${(await readFile(file, "utf8").catch(() => "")).slice(-3000)}`);
}

export { agentBinaryPath };
