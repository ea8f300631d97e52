/**
 * Turning a built rootfs into a VM's: the loader that starts Lodge's agent at every boot, a
 * serial console, power-button handling so an ACPI shutdown powers off, and (busybox) an init
 * that mounts what a kernel of its own does not mount for it.
 */
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { LOADER, LOADER_UNIT } from "./vm-boot.js";

/**
 * busybox init as a VM's pid 1: the loader respawned, a root shell on the serial console (a
 * test image: no password), and ::shutdown unmounts before busybox powers off.
 */
const INITTAB = `# busybox init as a VM's pid 1 (Lodge tiny VM image)
::sysinit:/etc/init.d/rcS
::respawn:/usr/lib/lodge/lodge-loader
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

const RC_S = `#!/bin/sh
# Start-up of Lodge's tiny VM: the kernel mounted nothing but / (and /dev, moved by the initramfs).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q "^[^ ]* /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
[ -s /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up
# The power button (ACPI, e.g. QMP system_powerdown) runs /etc/acpi/PWRF/00000080: poweroff.
acpid -c /etc/acpi -l /dev/null
if [ -e /sys/class/net/eth0 ]; then
  udhcpc -b -q -i eth0 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
fi
exit 0
`;

async function write(rootfs: string, rel: string, content: string, mode: number): Promise<void> {
  const p = path.join(rootfs, rel);
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, content);
  await chmod(p, mode);
}

/** The loader at /usr/lib/lodge/lodge-loader. */
async function installLoader(rootfs: string): Promise<void> {
  await write(rootfs, "usr/lib/lodge/lodge-loader", LOADER, 0o755);
}

export async function prepareBusyboxVm(rootfs: string): Promise<void> {
  await installLoader(rootfs);
  await write(rootfs, "etc/inittab", INITTAB, 0o644);
  await write(rootfs, "etc/init.d/rcS", RC_S, 0o755);
  await write(rootfs, "etc/acpi/PWRF/00000080", "#!/bin/sh\nexec /sbin/poweroff\n", 0o755);
  await write(rootfs, "etc/fstab", "/dev/vda / ext4 rw 0 1\n", 0o644);
}

/**
 * Debian: the loader as a systemd unit, early (before sysinit.target); the root disk in fstab;
 * eth0 by DHCP (net.ifnames=0 on the kernel command line keeps the name). The serial getty on
 * ttyS0 comes from systemd's getty generator (console=ttyS0), the power button from logind.
 */
export async function prepareDebianVm(rootfs: string): Promise<void> {
  await installLoader(rootfs);
  await write(rootfs, "etc/systemd/system/lodge-agent.service", LOADER_UNIT, 0o644);
  await mkdir(path.join(rootfs, "etc/systemd/system/sysinit.target.wants"), { recursive: true });
  await symlink("/etc/systemd/system/lodge-agent.service", path.join(rootfs, "etc/systemd/system/sysinit.target.wants/lodge-agent.service")).catch(
    (e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    },
  );
  await write(rootfs, "etc/fstab", "/dev/vda / ext4 errors=remount-ro 0 1\n", 0o644);
}
