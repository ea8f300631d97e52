import { readFile, access } from "node:fs/promises";
import os from "node:os";
import { run, which } from "./exec.js";

export interface HostFacts {
  kernel: string;
  kernelVersion: string;
  kernelArchitecture: string;
  architectures: string[];
  osName: string;
  osVersion: string;
  hostname: string;
  /** liblxc version, undefined when liblxc's tools are missing. */
  lxcVersion?: string;
  /** QEMU version, undefined when qemu-system for this architecture is missing. */
  qemuVersion?: string;
  cgroup: { v1: boolean; v2: boolean };
  firewall: "nftables" | "xtables";
  kernelFeatures: Record<string, string>;
  lxcFeatures: Record<string, string>;
}

/** Architectures a host can run natively (LXD's personalities). */
const PERSONALITIES: Record<string, string[]> = {
  x86_64: ["x86_64", "i686"],
  aarch64: ["aarch64", "armv7l"],
  ppc64le: ["ppc64le"],
  s390x: ["s390x"],
  riscv64: ["riscv64"],
};

export function qemuBinary(arch = os.machine()): string {
  return `qemu-system-${arch === "aarch64" ? "aarch64" : arch}`;
}

let cached: Promise<HostFacts> | undefined;

/** Facts about the host, read once per process (tools are spawned only here, in parallel). */
export function hostFacts(): Promise<HostFacts> {
  return (cached ??= gather());
}

async function gather(): Promise<HostFacts> {
  const arch = os.machine();
  const [osRelease, lxcVersion, qemuVersion, cgroup, nft] = await Promise.all([
    readFile("/etc/os-release", "utf8").catch(() => ""),
    toolVersion("lxc-start", ["--version"], /^(\d+\.\d+(?:\.\d+)?)/m),
    toolVersion(qemuBinary(arch), ["--version"], /version (\d+\.\d+(?:\.\d+)?)/),
    cgroupLayout(),
    which("nft"),
  ]);
  const rel = parseOsRelease(osRelease);
  const kernelVersion = os.release();
  return {
    kernel: os.type(),
    kernelVersion,
    kernelArchitecture: arch,
    architectures: PERSONALITIES[arch] ?? [arch],
    osName: rel.NAME ?? "Linux",
    osVersion: rel.VERSION_ID ?? "",
    hostname: os.hostname(),
    lxcVersion,
    qemuVersion,
    cgroup,
    firewall: nft ? "nftables" : "xtables",
    kernelFeatures: kernelFeatures(kernelVersion),
    lxcFeatures: lxcFeatures(lxcVersion, cgroup.v2),
  };
}

async function toolVersion(cmd: string, args: string[], re: RegExp): Promise<string | undefined> {
  try {
    const r = await run(cmd, args, { allowFail: true });
    return re.exec(r.stdout + r.stderr)?.[1];
  } catch {
    return undefined;
  }
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  return out;
}

async function cgroupLayout(): Promise<{ v1: boolean; v2: boolean }> {
  const mounts = await readFile("/proc/self/mounts", "utf8").catch(() => "");
  const lines = mounts.split("\n");
  return {
    v1: lines.some((l) => l.split(" ")[2] === "cgroup"),
    v2: lines.some((l) => l.split(" ")[2] === "cgroup2"),
  };
}

function versionAtLeast(v: string | undefined, major: number, minor: number): boolean {
  if (!v) return false;
  const [a = 0, b = 0] = v.split(/[.-]/).map((x) => parseInt(x, 10));
  return a > major || (a === major && b >= minor);
}

/** Kernel features LXD reports, from the kernel release that introduced each. */
export function kernelFeatures(release: string): Record<string, string> {
  const has = (maj: number, min: number) => String(versionAtLeast(release, maj, min));
  return {
    idmapped_mounts: has(5, 12),
    netnsid_getifaddrs: has(4, 20),
    seccomp_listener: has(5, 0),
    seccomp_listener_continue: has(5, 5),
    shiftfs: "false",
    uevent_injection: has(4, 18),
    unpriv_fscaps: has(4, 14),
  };
}

/** liblxc API extensions present in a release (all of these ship in liblxc 5.0). */
export function lxcFeatures(version: string | undefined, cgroup2: boolean): Record<string, string> {
  if (!version) return {};
  const five = versionAtLeast(version, 5, 0);
  const four = versionAtLeast(version, 4, 0);
  return {
    cgroup2: String(four && cgroup2),
    devpts_fd: String(four),
    idmapped_mounts_v2: String(five),
    mount_injection_file: String(four),
    network_gateway_device_route: String(four),
    network_ipvlan: String(four),
    network_l2proxy: String(four),
    network_phys_macvlan_mtu: String(four),
    network_veth_router: String(four),
    pidfd: String(four),
    seccomp_allow_deny_syntax: String(four),
    seccomp_notify: String(four),
    seccomp_proxy_send_notify_fd: String(four),
  };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
