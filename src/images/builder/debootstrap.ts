/**
 * A Debian rootfs from debootstrap, set up to boot as a system container: systemd as init,
 * DHCP on eth0 through ifupdown, and nothing of the build host left behind (no machine-id,
 * apt caches, ssh host keys or resolv.conf).
 */
import { chmod, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { runInRootfs, runStreaming, type ProgressFn } from "./command.js";

export interface DebootstrapOptions {
  suite: string;
  mirror: string;
  components: string[];
  /** Debian architecture name (amd64, arm64, …). */
  architecture: string;
  /** debootstrap --variant; minbase by default. */
  variant?: string;
  hostname: string;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}

/** What a container needs on top of minbase: an init, and a network that configures itself. */
export const CONTAINER_PACKAGES = ["systemd-sysv", "iproute2", "ifupdown", "isc-dhcp-client", "netbase"];

const DEFAULT_MIRROR_HOST = "deb.debian.org";

/**
 * Runs debootstrap into rootfs and configures the result for a container. debootstrap runs in
 * its own mount namespace, so the /proc and /sys it mounts in the target cannot outlive it.
 */
export async function bootstrapDebian(rootfs: string, o: DebootstrapOptions): Promise<void> {
  const args = [
    `--variant=${o.variant ?? "minbase"}`,
    `--arch=${o.architecture}`,
    `--components=${o.components.join(",")}`,
    `--include=${CONTAINER_PACKAGES.join(",")}`,
    o.suite,
    rootfs,
    o.mirror,
  ];
  o.onProgress?.(`debootstrap ${args.join(" ")}`);
  await runStreaming("unshare", ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--", "debootstrap", ...args], {
    signal: o.signal,
    onLine: (l) => {
      if (/^[IWE]: /.test(l)) o.onProgress?.(`debootstrap: ${l}`);
    },
  });
  await configureForContainer(rootfs, o);
}

/**
 * Brings the rootfs up to date from the suite's updates and security archives (debootstrap
 * installs only the release's own packages) and installs extra packages, without starting any
 * service.
 */
export async function installPackages(rootfs: string, packages: string[], onProgress?: ProgressFn, signal?: AbortSignal): Promise<void> {
  onProgress?.(packages.length ? `upgrading, then installing ${packages.join(" ")}` : "upgrading to the latest updates");
  const apt = "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";
  const install = packages.length ? ` && ${apt} install --no-install-recommends ${packages.join(" ")}` : "";
  // policy-rc.d answering 101 tells maintainer scripts not to start services in the build.
  const policy = path.join(rootfs, "usr/sbin/policy-rc.d");
  await writeFile(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    await runInRootfs(rootfs, `apt-get update -q && ${apt} dist-upgrade${install}`, {
      signal,
      onLine: (l) => {
        if (/^(Get|Setting up|Unpacking|E:|W:)/.test(l)) onProgress?.(`apt: ${l}`);
      },
    });
  } finally {
    await rm(policy, { force: true });
  }
}

/** Removes what the build leaves that must not ship: caches, lists, host identity, keys. */
export async function cleanDebian(rootfs: string): Promise<void> {
  const p = (rel: string) => path.join(rootfs, rel);
  await emptyDir(p("var/cache/apt/archives"), ["partial", "lock"]);
  await emptyDir(p("var/lib/apt/lists"), ["partial", "lock"]);
  for (const f of await readdir(p("var/cache/apt")).catch(() => [] as string[])) {
    if (f.endsWith(".bin")) await rm(p(`var/cache/apt/${f}`), { force: true });
  }
  for (const f of await readdir(p("etc/ssh")).catch(() => [] as string[])) {
    if (f.startsWith("ssh_host_")) await rm(p(`etc/ssh/${f}`), { force: true });
  }
  // An empty machine-id makes systemd generate a fresh one on first boot of each instance.
  await writeFile(p("etc/machine-id"), "");
  await chmod(p("etc/machine-id"), 0o444);
  await rm(p("var/lib/dbus/machine-id"), { force: true });
  // debootstrap copied the build host's resolver; dhclient writes the instance's own.
  await rm(p("etc/resolv.conf"), { force: true });
  await writeFile(p("etc/resolv.conf"), "");
  await rm(p("var/log/bootstrap.log"), { force: true });
}

async function configureForContainer(rootfs: string, o: DebootstrapOptions): Promise<void> {
  const p = (rel: string) => path.join(rootfs, rel);
  o.onProgress?.("configuring the rootfs for a container");
  await writeFile(p("etc/hostname"), `${o.hostname}\n`);
  await writeFile(p("etc/hosts"), `127.0.0.1\tlocalhost\n127.0.1.1\t${o.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  await writeFile(p("etc/fstab"), "# a container's mounts come from its configuration\n");
  await mkdir(p("etc/network"), { recursive: true });
  await writeFile(p("etc/network/interfaces"), "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n\nsource /etc/network/interfaces.d/*\n");
  await writeFile(p("etc/apt/sources.list"), sourcesList(o));
}

/** The suite itself, plus its updates and security suites when it is a stable release on Debian's own mirror. */
export function sourcesList(o: Pick<DebootstrapOptions, "suite" | "mirror" | "components">): string {
  const comps = o.components.join(" ");
  const lines = [`deb ${o.mirror} ${o.suite} ${comps}`];
  const rolling = ["sid", "unstable", "testing", "experimental"].includes(o.suite);
  if (!rolling && new URL(o.mirror).host === DEFAULT_MIRROR_HOST) {
    lines.push(`deb ${o.mirror} ${o.suite}-updates ${comps}`);
    lines.push(`deb ${o.mirror.replace(/\/debian\/?$/, "/debian-security")} ${o.suite}-security ${comps}`);
  }
  return lines.join("\n") + "\n";
}

async function emptyDir(dir: string, keep: string[]): Promise<void> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!keep.includes(f)) await rm(path.join(dir, f), { recursive: true, force: true });
  }
}
