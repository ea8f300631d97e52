/**
 * A container rootfs made from the host's static busybox: the binary, one link per applet,
 * and just enough of /etc for busybox init to run as a container's pid 1. Takes about a second.
 */
import { chmod, copyFile, mkdir, readlink, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "../../sys/exec.js";

export interface BusyboxOptions {
  /** A statically linked busybox (a dynamic one would need the host's libraries too). */
  busybox?: string;
  hostname: string;
}

export interface BusyboxResult {
  /** busybox's version, e.g. 1.35.0. */
  version: string;
}

const DIRS: [string, number][] = [
  ["bin", 0o755], ["sbin", 0o755], ["usr/bin", 0o755], ["usr/sbin", 0o755], ["usr/share/udhcpc", 0o755],
  ["etc/init.d", 0o755], ["dev", 0o755], ["proc", 0o555], ["sys", 0o555], ["run", 0o755], ["tmp", 0o1777],
  ["root", 0o700], ["home", 0o755], ["mnt", 0o755], ["var/log", 0o755], ["var/tmp", 0o1777], ["var/spool/cron/crontabs", 0o755],
];

/**
 * Busybox's built-in defaults (used when /etc/inittab is missing) respawn shells on the
 * console and tty2-tty4; a container has no such ttys, so those would fail and respawn
 * without end. LXD's own busybox test image avoids this with an empty inittab. Ours runs one
 * start-up script and then keeps init alive with nothing to respawn; a shell comes from
 * `lodge exec` (lxc-attach). busybox init halts on SIGPWR, which is what liblxc sends on stop.
 */
const INITTAB = `# busybox init as a container's pid 1: no consoles to respawn; start-up only.
::sysinit:/etc/init.d/rcS
`;

const RC_S = `#!/bin/sh
# Start-up for a container. The container manager usually mounts /proc, /sys and /dev
# already: mount only what is missing.
mounted() { grep -qs "^[^ ]* $1 " /proc/mounts; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sysfs /sys 2>/dev/null
mounted /run || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run 2>/dev/null
[ -s /etc/hostname ] && hostname -F /etc/hostname 2>/dev/null
ip link set lo up 2>/dev/null
if [ -e /sys/class/net/eth0 ]; then
  udhcpc -b -i eth0 -s /usr/share/udhcpc/default.script >/dev/null 2>&1
fi
exit 0
`;

/** udhcpc hands its lease to this script; it sets the address, default route and DNS. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
deconfig)
  ip -4 addr flush dev "$interface"
  ip link set "$interface" up
  ;;
bound|renew)
  [ "$1" = bound ] && ip -4 addr flush dev "$interface"
  ip addr replace "$ip/\${mask:-24}" \${broadcast:+broadcast "$broadcast"} dev "$interface"
  for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
  : > /etc/resolv.conf
  [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
  for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
  ;;
esac
exit 0
`;

/** Builds a busybox rootfs into `rootfs` (an empty or missing directory). */
export async function buildBusyboxRootfs(rootfs: string, opts: BusyboxOptions): Promise<BusyboxResult> {
  const busybox = opts.busybox ?? "/bin/busybox";
  const [banner, list] = await Promise.all([
    run(busybox, [], { allowFail: true }),
    run(busybox, ["--list-full"]),
  ]);
  const version = /BusyBox v(\d+(?:\.\d+)*)/.exec(banner.stdout + banner.stderr)?.[1];
  if (!version) throw new Error(`${busybox} does not look like busybox`);
  const ldd = await run("ldd", [busybox], { allowFail: true }).catch(() => undefined);
  if (ldd && ldd.code === 0 && /=>/.test(ldd.stdout)) throw new Error(`${busybox} is dynamically linked; install busybox-static`);

  for (const [d, mode] of DIRS) {
    await mkdir(path.join(rootfs, d), { recursive: true });
    await chmod(path.join(rootfs, d), mode);
  }
  await copyFile(busybox, path.join(rootfs, "bin/busybox"));
  await chmod(path.join(rootfs, "bin/busybox"), 0o755);

  // One absolute link per applet, where busybox itself says it belongs (sbin/init, bin/sh, …).
  const applets = list.stdout.split("\n").map((l) => l.trim()).filter((l) => l && l !== "bin/busybox" && l !== "linuxrc");
  for (const rel of applets) {
    if (rel.includes("..") || rel.startsWith("/")) continue;
    const at = path.join(rootfs, rel);
    await mkdir(path.dirname(at), { recursive: true });
    await symlink("/bin/busybox", at).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  }
  for (const needed of ["sbin/init", "bin/sh"]) {
    if ((await readlink(path.join(rootfs, needed)).catch(() => undefined)) !== "/bin/busybox") {
      throw new Error(`${busybox} has no ${path.basename(needed)} applet`);
    }
  }

  const files: [string, string, number][] = [
    ["etc/inittab", INITTAB, 0o644],
    ["etc/init.d/rcS", RC_S, 0o755],
    ["usr/share/udhcpc/default.script", UDHCPC_SCRIPT, 0o755],
    ["etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644],
    ["etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640],
    ["etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644],
    ["etc/hostname", `${opts.hostname}\n`, 0o644],
    ["etc/hosts", `127.0.0.1\tlocalhost\n127.0.1.1\t${opts.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, 0o644],
    ["etc/resolv.conf", "", 0o644],
    ["etc/fstab", "", 0o644],
    ["etc/profile", 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1="\\h:\\w\\$ "\n', 0o644],
    [
      "etc/os-release",
      `NAME="BusyBox"\nID=busybox\nVERSION_ID="${version}"\nPRETTY_NAME="BusyBox ${version}"\nHOME_URL="https://busybox.net/"\n`,
      0o644,
    ],
  ];
  for (const [rel, content, mode] of files) {
    await writeFile(path.join(rootfs, rel), content);
    await chmod(path.join(rootfs, rel), mode);
  }
  return { version };
}
