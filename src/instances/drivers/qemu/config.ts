/**
 * QEMU's command line for a VM, generated whole at every start from the spec and what the host
 * gave (accelerator, firmware, taps, seed): a pure function, so what a VM runs with is readable
 * (the driver writes it to the VM's `config`, one argument per line) and testable without QEMU.
 *
 * Only what is named here exists in the machine (`-nodefaults -no-user-config`): q35, a
 * virtio-blk root disk, virtio-serial with the agent ports, the serial console on a socket with
 * a log, virtio-rng, a virtio-net per tap, read-only disks for the seed and config drive, and a
 * 9p share per host-path disk device. QEMU daemonizes (its own session, reparented to init), so
 * it outlives lodged, and writes its pid once its sockets listen.
 */
import { createHash } from "node:crypto";
import type { VmSpec } from "../../driver.js";
import type { Accelerator } from "./kvm.js";
import type { DiskFormat } from "./disk.js";
import type { Firmware } from "./firmware.js";
import type { VmPaths } from "./paths.js";
import type { TapDevice } from "./tap.js";

export const AGENT_PORT = "org.lodge.agent.0";
export const QGA_PORT = "org.qemu.guest_agent.0";
/**
 * TCG's translation cache, in MiB. QEMU's default (1 GiB for a system guest) lets a booting
 * Debian fill ~400 MiB of host memory with translated code it mostly never runs again; a
 * smaller cache retranslates a little more and keeps an idle VM's overhead small.
 */
export const TCG_CACHE_MIB = 128;

export interface QemuLaunch {
  spec: VmSpec;
  paths: VmPaths;
  accel: Accelerator;
  rootFormat: DiskFormat;
  /** UEFI boot; absent with direct kernel boot. */
  firmware?: Firmware;
  taps: TapDevice[];
  /** The cloud-init seed ISO, if made. */
  seed?: string;
  /** The config drive image with the agent, if made. */
  configDrive?: string;
}

/** Commas in a QEMU option value are doubled. */
export function optValue(v: string): string {
  return v.replace(/,/g, ",,");
}

/** The 9p mount tag of a share: short (QEMU caps tags at 31 bytes) and stable per target. */
export function shareTag(target: string): string {
  return `lodge_${createHash("sha256").update(target).digest("hex").slice(0, 16)}`;
}

export function qemuArgs(l: QemuLaunch): string[] {
  const { spec, paths } = l;
  const memMiB = Math.max(64, Math.floor(spec.memoryBytes / (1024 * 1024)));
  const cpus = Math.max(1, Math.floor(spec.cpus));
  const smm = l.firmware?.secureboot ? ",smm=on" : "";
  const a: string[] = [
    "-name", `${spec.name},debug-threads=on`,
    "-nodefaults", "-no-user-config",
    "-machine", `q35${smm}`,
    ...(l.accel === "kvm" ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", `tcg,thread=multi,tb-size=${TCG_CACHE_MIB}`, "-cpu", "max"]),
    "-smp", String(cpus),
    "-m", `${memMiB}M`,
    "-display", "none",
    "-daemonize",
    "-pidfile", paths.pidfile,
    "-chardev", `socket,id=qmp,path=${optValue(paths.qmp)},server=on,wait=off`,
    "-mon", "chardev=qmp,mode=control",
    // The serial console: a socket for `lxc console`, and everything it prints in the log.
    "-chardev", `socket,id=console,path=${optValue(paths.console)},server=on,wait=off,logfile=${optValue(paths.consoleLog)},logappend=off`,
    "-serial", "chardev:console",
    "-device", "virtio-rng-pci,id=rng",
    "-device", "virtio-serial-pci,id=vserial",
    "-chardev", `socket,id=agent,path=${optValue(paths.agent)},server=on,wait=off`,
    "-device", `virtserialport,bus=vserial.0,chardev=agent,name=${AGENT_PORT}`,
    "-chardev", `socket,id=qga,path=${optValue(paths.qga)},server=on,wait=off`,
    "-device", `virtserialport,bus=vserial.0,chardev=qga,name=${QGA_PORT}`,
    "-drive", `file=${optValue(spec.rootDisk)},format=${l.rootFormat},if=none,id=root,discard=unmap`,
    // With -kernel, QEMU's linuxboot option ROM holds boot index 0.
    "-device", `virtio-blk-pci,drive=root,id=root-disk${spec.boot ? "" : ",bootindex=0"}`,
  ];
  if (spec.boot) {
    a.push("-kernel", spec.boot.kernel);
    if (spec.boot.initrd) a.push("-initrd", spec.boot.initrd);
    if (spec.boot.cmdline) a.push("-append", spec.boot.cmdline);
  } else if (l.firmware) {
    if (l.firmware.secureboot) a.push("-global", "driver=cfi.pflash01,property=secure,value=on");
    a.push(
      "-drive", `if=pflash,format=raw,unit=0,file=${optValue(l.firmware.code)},readonly=on`,
      "-drive", `if=pflash,format=raw,unit=1,file=${optValue(l.firmware.vars)}`,
    );
  }
  if (l.seed) a.push("-drive", `file=${optValue(l.seed)},format=raw,if=none,id=seed,readonly=on`, "-device", "virtio-blk-pci,drive=seed,id=seed-disk");
  if (l.configDrive) a.push("-drive", `file=${optValue(l.configDrive)},format=raw,if=none,id=config,readonly=on`, "-device", "virtio-blk-pci,drive=config,id=config-disk");
  l.taps.forEach((t, i) => {
    a.push("-netdev", `tap,id=net${i},ifname=${t.tap},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=net${i},mac=${t.hwaddr},id=nic${i}`);
  });
  spec.run.mounts.forEach((m, i) => {
    a.push(
      "-fsdev", `local,id=fs${i},path=${optValue(m.source)},security_model=passthrough${m.readonly ? ",readonly=on" : ""}`,
      "-device", `virtio-9p-pci,fsdev=fs${i},mount_tag=${shareTag(m.target)}`,
    );
  });
  return a;
}
