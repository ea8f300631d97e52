/**
 * What a VM image needs to boot straight from its metadata (direct kernel boot, the fast path
 * under TCG): the kernel, a small initramfs that loads the virtio modules and switches to the
 * root disk /dev/vda, and the loader that starts Lodge's agent from the config drive.
 *
 * The kernel is Debian's cloud kernel (virtio as modules, ext4 built in). A busybox image takes
 * it from the package's .deb, cached under /var/cache/lodge by scripts/setup.sh; a Debian image
 * installs the package in its rootfs and uses that.
 */
import { chmod, copyFile, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "../../sys/exec.js";
import { runStreaming, type ProgressFn } from "./command.js";

export const KERNEL_CACHE = process.env.LODGE_KERNEL_CACHE ?? "/var/cache/lodge";
export const KERNEL_PACKAGE = "linux-image-cloud-amd64";

/** The kernel command line of direct boot; the initramfs reads root= from it. */
export const DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda rw quiet panic=-1 net.ifnames=0 mitigations=off";

/** Modules the initramfs loads (with their dependencies): disks, the agent's port, NICs, the power button. */
export const BOOT_MODULES = ["virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "virtio_rng", "button", "evdev"];

/**
 * The cached .deb of the cloud kernel, fetched with `apt-get download` into the cache when it
 * is missing (the concrete package `linux-image-cloud-amd64` depends on).
 */
export async function cloudKernelDeb(onProgress?: ProgressFn): Promise<string> {
  const cached = async () =>
    (await readdir(KERNEL_CACHE).catch(() => [] as string[])).filter((f) => /^linux-image-[\d.]+-\d+-cloud-amd64_.*\.deb$/.test(f)).sort().pop();
  let deb = await cached();
  if (!deb) {
    const deps = (await run("apt-cache", ["depends", KERNEL_PACKAGE])).stdout;
    const pkg = /Depends: (linux-image-\S+)/.exec(deps)?.[1];
    if (!pkg) throw new Error(`apt-cache does not know which kernel ${KERNEL_PACKAGE} depends on (run apt-get update)`);
    onProgress?.(`downloading ${pkg} into ${KERNEL_CACHE}`);
    await mkdir(KERNEL_CACHE, { recursive: true });
    await runStreaming("sh", ["-c", 'cd "$1" && apt-get download "$2"', "sh", KERNEL_CACHE, pkg]);
    deb = await cached();
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${KERNEL_CACHE}`);
  }
  return path.join(KERNEL_CACHE, deb);
}

export interface KernelTree {
  vmlinuz: string;
  version: string;
  /** lib/modules/<version> */
  modules: string;
}

/** The kernel and modules under a root (an unpacked .deb or a rootfs with the package installed). */
export async function findKernel(root: string): Promise<KernelTree> {
  const boot = await readdir(path.join(root, "boot")).catch(() => [] as string[]);
  const image = boot.filter((f) => /^vmlinuz-/.test(f)).sort().pop();
  if (!image) throw new Error(`no kernel (boot/vmlinuz-*) under ${root}`);
  const version = image.slice("vmlinuz-".length);
  for (const lib of ["lib", "usr/lib"]) {
    const modules = path.join(root, lib, "modules", version);
    if ((await readdir(modules).catch(() => undefined)) !== undefined) return { vmlinuz: path.join(root, "boot", image), version, modules };
  }
  throw new Error(`no modules for kernel ${version} under ${root}`);
}

/** Unpacks a kernel .deb into dir. */
export async function unpackKernelDeb(deb: string, dir: string): Promise<KernelTree> {
  await runStreaming("dpkg-deb", ["-x", deb, dir]);
  return findKernel(dir);
}

/** Module name → its .ko under the tree ("-" and "_" are the same in module names). */
async function moduleIndex(modules: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith(".ko")) out.set(e.name.slice(0, -3).replace(/-/g, "_"), p);
    }
  };
  await walk(path.join(modules, "kernel"));
  return out;
}

/** A module's `depends=` from its .modinfo section (no modinfo tool needed). */
async function moduleDepends(ko: string): Promise<string[]> {
  const b = await readFile(ko);
  const at = b.indexOf("\0depends=");
  if (at < 0) return [];
  const end = b.indexOf(0, at + 1);
  return b.subarray(at + 9, end).toString("latin1").split(",").filter(Boolean).map((m) => m.replace(/-/g, "_"));
}

/** The modules to load, dependencies first; a module the kernel has built in is skipped. */
export async function moduleLoadOrder(modules: string, wanted: readonly string[]): Promise<string[]> {
  const index = await moduleIndex(modules);
  const order: string[] = [];
  const visit = async (m: string): Promise<void> => {
    const ko = index.get(m);
    if (!ko || order.includes(ko)) return;
    for (const d of await moduleDepends(ko)) await visit(d);
    if (!order.includes(ko)) order.push(ko);
  };
  for (const m of wanted) await visit(m.replace(/-/g, "_"));
  return order;
}

const INIT = `#!/bin/busybox sh
# Lodge's VM initramfs: load the virtio modules, mount the root disk, switch to it.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
for m in $(cat /etc/modules.order); do insmod "/lib/modules/$m" 2>/dev/null; done
root=/dev/vda; fstype=ext4; rootflags=rw
for a in $(cat /proc/cmdline); do
  case "$a" in root=*) root="\${a#root=}" ;; rootfstype=*) fstype="\${a#rootfstype=}" ;; ro) rootflags=ro ;; esac
done
n=0
while [ ! -b "$root" ] && [ $n -lt 1000 ]; do usleep 10000; n=$((n + 1)); done
if ! mount -t "$fstype" -o "$rootflags" "$root" /newroot; then
  echo "lodge initramfs: cannot mount $root; a shell for rescue" >/dev/console
  exec sh </dev/console >/dev/console 2>&1
fi
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /sys /proc
exec switch_root /newroot /sbin/init
`;

/**
 * Writes the initramfs (gzip'd newc cpio) to `out`: static busybox, the modules in load order,
 * and /init.
 */
export async function buildInitramfs(k: KernelTree, out: string, work: string, busybox = "/bin/busybox"): Promise<void> {
  const dir = path.join(work, "initramfs");
  for (const d of ["bin", "etc", "lib/modules", "proc", "sys", "dev", "newroot"]) await mkdir(path.join(dir, d), { recursive: true });
  await copyFile(busybox, path.join(dir, "bin/busybox"));
  await chmod(path.join(dir, "bin/busybox"), 0o755);
  await symlink("busybox", path.join(dir, "bin/sh"));
  const order = await moduleLoadOrder(k.modules, BOOT_MODULES);
  const names: string[] = [];
  for (const ko of order) {
    const name = path.basename(ko);
    await copyFile(ko, path.join(dir, "lib/modules", name));
    names.push(name);
  }
  await writeFile(path.join(dir, "etc/modules.order"), names.join("\n") + "\n");
  await writeFile(path.join(dir, "init"), INIT, { mode: 0o755 });
  await runStreaming("sh", ["-c", 'cd "$1" && find . | sort | "$2" cpio -o -H newc 2>/dev/null | gzip -6 > "$3"', "sh", dir, busybox, out]);
}

/**
 * The loader: finds the config drive (an ext4 disk labelled lodge-config: the label is read
 * straight from the superblock, so it needs neither udev nor blkid), copies the agent to a
 * tmpfs and runs it. init (busybox respawn, systemd Restart=always) restarts it when it ends.
 */
export const LOADER = `#!/bin/sh
# lodge-loader: starts Lodge's guest agent from the config drive (see docs/vm-agent.md).
dir=/run/lodge-agent
label_of() { dd if="$1" bs=1 skip=1144 count=16 2>/dev/null | tr -d '\\000'; }
find_drive() {
  for b in /sys/block/vd* /sys/block/sd*; do
    [ -e "$b" ] || continue
    d=/dev/\${b##*/}
    [ -b "$d" ] && [ "$(label_of "$d")" = lodge-config ] && { echo "$d"; return 0; }
  done
  return 1
}
if [ ! -x "$dir/lodge-agent" ]; then
  n=0
  until dev=$(find_drive); do
    n=$((n + 1))
    if [ $n -gt 100 ]; then echo "lodge-loader: no config drive (label lodge-config)" >&2; sleep 30; exit 1; fi
    sleep 0.1 2>/dev/null || sleep 1
  done
  mkdir -p "$dir/mnt"
  mount -t ext4 -o ro "$dev" "$dir/mnt" || { sleep 5; exit 1; }
  cp "$dir/mnt/lodge-agent" "$dir/lodge-agent.new" && cp "$dir/mnt/agent.conf" "$dir/agent.conf" 2>/dev/null
  umount "$dir/mnt"
  chmod 0755 "$dir/lodge-agent.new" && mv "$dir/lodge-agent.new" "$dir/lodge-agent" || exit 1
fi
exec "$dir/lodge-agent" --conf "$dir/agent.conf"
`;

export const LOADER_UNIT = `[Unit]
Description=Lodge guest agent (from the config drive)
Documentation=https://github.com/lodge/lodge/blob/main/docs/vm-agent.md
DefaultDependencies=no
After=systemd-remount-fs.service
Before=sysinit.target
ConditionVirtualization=vm

[Service]
ExecStart=/usr/lib/lodge/lodge-loader
Restart=always
RestartSec=1

[Install]
WantedBy=sysinit.target
`;

/**
 * A root disk: an ext4 filesystem made straight from the rootfs directory (mkfs.ext4 -d, no
 * mount), converted to qcow2. Sized to the content with room to spare.
 */
export async function makeRootDisk(rootfs: string, out: string, work: string, minBytes: number, onProgress?: ProgressFn): Promise<void> {
  const used = Number((await run("du", ["-s", "-B1", "--apparent-size", rootfs])).stdout.split(/\s/)[0]);
  const inodes = Number((await run("sh", ["-c", 'find "$1" -xdev | wc -l', "sh", rootfs])).stdout.trim());
  const mib = Math.max(Math.ceil(minBytes / 2 ** 20), Math.ceil((used * 1.3 + inodes * 4096) / 2 ** 20) + 64);
  const raw = path.join(work, "rootfs.raw");
  onProgress?.(`making a ${mib} MiB ext4 root disk (mkfs.ext4 -d)`);
  await runStreaming("mkfs.ext4", ["-q", "-F", "-L", "rootfs", "-d", rootfs, "-E", "lazy_itable_init=0,lazy_journal_init=0", raw, `${mib}M`]);
  onProgress?.("converting the root disk to qcow2");
  await runStreaming("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, out]);
  await run("rm", ["-f", raw]);
}
