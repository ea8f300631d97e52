/**
 * A guest for VM driver tests: Debian's cloud kernel (its package fetched once with
 * `apt-get download` into a cache that outlives the run) and a tiny initramfs made here from the
 * host's static busybox and the kernel's own modules. /init loads the virtio and ACPI button
 * modules, says what it sees on the serial console (ttyS0), and powers off when the ACPI power
 * button is pressed (QMP system_powerdown). Builds in well under a second once the kernel is cached.
 */
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { cloudKernelDeb } from "../../src/images/builder/vm-boot.js";

const exec = promisify(execFile);
const CACHE = process.env.LODGE_TEST_CACHE ?? "/var/cache/lodge-test";
const WANTED = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio-rng", "button", "evdev"];

export interface TestGuest {
  kernel: string;
  initrd: string;
  cmdline: string;
}

/** /init: the lines the tests look for are "lodge-test-guest: ..." on ttyS0. */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
echo "lodge-test-guest: up, kernel $(uname -r)"
echo "lodge-test-guest: disks $(ls /sys/block | tr '\\n' ' ')"
echo "lodge-test-guest: nics $(ls /sys/class/net | tr '\\n' ' ')"
echo "lodge-test-guest: ports $(cat /sys/class/virtio-ports/*/name 2>/dev/null | tr '\\n' ' ')"
for e in /sys/class/input/event*; do
  if grep -q "Power Button" $e/device/name 2>/dev/null; then
    (head -c 1 /dev/input/$(basename $e) >/dev/null; echo "lodge-test-guest: power button"; poweroff -f) &
  fi
done
echo "lodge-test-guest: ready"
while true; do sleep 3600; done
`;

let cached: Promise<TestGuest> | undefined;

/** The kernel, the initramfs (in a temp dir removed at exit) and a command line for ttyS0. */
export function testGuest(): Promise<TestGuest> {
  return (cached ??= build());
}

async function build(): Promise<TestGuest> {
  const kroot = await kernelTree();
  const release = (await readdir(join(kroot, "lib/modules")))[0]!;
  const modDir = join(kroot, "lib/modules", release);
  const dir = await mkdtemp(join(tmpdir(), "lodge-vmguest-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, "root");
  for (const d of ["bin", "proc", "sys", "dev", "lib/modules"]) await mkdir(join(root, d), { recursive: true });
  await copyFile("/bin/busybox", join(root, "bin/busybox"));
  await writeFile(join(root, "init"), INIT, { mode: 0o755 });
  await chmod(join(root, "init"), 0o755);
  const order = await moduleOrder(modDir, WANTED);
  for (const m of order) await copyFile(join(modDir, m), join(root, "lib/modules", m.split("/").pop()!));
  await writeFile(join(root, "modules.order"), order.map((m) => m.split("/").pop()).join("\n") + "\n");
  const initrd = join(dir, "initrd.gz");
  await exec("sh", ["-c", `cd "${root}" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "${initrd}"`]);
  return {
    kernel: join(kroot, "boot", `vmlinuz-${release}`),
    initrd,
    cmdline: "console=ttyS0 panic=-1",
  };
}

/** The cloud kernel package (the image builder's cache, filled by scripts/setup.sh), unpacked once into the test cache. */
async function kernelTree(): Promise<string> {
  const root = join(CACHE, "cloud-kernel");
  if (existsSync(join(root, "boot"))) return root;
  await mkdir(CACHE, { recursive: true });
  const deb = await cloudKernelDeb();
  const tmp = `${root}.tmp${process.pid}`;
  await exec("dpkg-deb", ["-x", deb, tmp]);
  await exec("mv", ["-T", tmp, root]);
  return root;
}

/**
 * The wanted modules and what they depend on, dependencies first (paths relative to modDir).
 * The package has no modules.dep (depmod makes it at install): each module's own
 * `depends=` field in its .modinfo section says the same.
 */
async function moduleOrder(modDir: string, wanted: string[]): Promise<string[]> {
  const { stdout } = await exec("find", [".", "-name", "*.ko"], { cwd: modDir, maxBuffer: 64 << 20 });
  const byName = new Map(stdout.split("\n").filter(Boolean).map((p) => [p.split("/").pop()!.replace(/\.ko$/, "").replace(/-/g, "_"), p.slice(2)]));
  const out: string[] = [];
  const visit = async (name: string) => {
    const m = byName.get(name.replace(/-/g, "_"));
    if (!m) throw new Error(`module ${name} not in ${dirname(modDir)}`);
    if (out.includes(m)) return;
    const info = (await readFile(join(modDir, m))).toString("latin1");
    const deps = /\0depends=([^\0]*)/.exec(info)?.[1] ?? "";
    for (const d of deps.split(",").filter(Boolean)) await visit(d);
    if (!out.includes(m)) out.push(m);
  };
  for (const w of wanted) await visit(w);
  return out;
}
