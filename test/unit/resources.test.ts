import test, { after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir, release } from "node:os";
import { dirname, join, relative } from "node:path";
import { shapeProblems } from "../helpers/api-shape.js";
import {
  cpuResources,
  gpuResources,
  hostResources,
  memoryResources,
  networkResources,
  pciResources,
  storageResources,
  systemResources,
  usbResources,
} from "../../src/sys/resources/index.js";
import { parseIds } from "../../src/sys/resources/ids.js";
import { parseVpd } from "../../src/sys/resources/pci.js";
import { parseCpuset } from "../../src/sys/resources/sysfs.js";

// A fake host under a temp directory: two CPU sockets (one thread offline, one isolated), two
// NUMA nodes with huge pages, an Intel NIC, GPU and SATA disk with two partitions on PCI, a USB
// mouse receiver behind a hub, DMI data, and small pci.ids / usb.ids files to name them.

let root = "";

async function file(path: string, content: string | Buffer, base = root): Promise<void> {
  await mkdir(dirname(join(base, path)), { recursive: true });
  await writeFile(join(base, path), content);
}
/** A relative symlink, as sysfs makes them, so that the tree resolves inside itself. */
async function link(path: string, target: string, base = root): Promise<void> {
  const at = join(base, path);
  await mkdir(dirname(at), { recursive: true });
  await symlink(relative(dirname(at), join(base, target)), at);
}
async function files(dir: string, entries: Record<string, string>, base = root): Promise<void> {
  for (const [name, content] of Object.entries(entries)) await file(join(dir, name), content + "\n", base);
}

const CPU = "sys/devices/system/cpu";
const PCI = "sys/devices/pci0000:00";
const NIC = `${PCI}/0000:00:1f.6`;
const GPU = `${PCI}/0000:00:02.0`;
const SATA = `${PCI}/0000:00:17.0`;
const SCSI = `${SATA}/ata1/host0/target0:0:0/0:0:0:0`;
const XHCI = `${PCI}/0000:00:14.0`;
const VIRTIO = `${PCI}/0000:00:03.0`;

const cpuinfoBlock = (n: number, model: string) =>
  `processor\t: ${n}\nvendor_id\t: GenuineIntel\nmodel name\t: ${model}\nflags\t\t: fpu vme de pse\n`;

async function buildTree(): Promise<void> {
  // CPUs: cpu0 and cpu4 are the two threads of socket 0's core 0, cpu1 is its core 1; cpu2 and
  // cpu3 are socket 1's cores 0 and 1; cpu5 is offline (no topology).
  const topo: Record<number, [number, number]> = { 0: [0, 0], 1: [0, 1], 2: [1, 0], 3: [1, 1], 4: [0, 0] };
  for (const [n, [pkg, core]] of Object.entries(topo)) {
    await files(`${CPU}/cpu${n}/topology`, { physical_package_id: String(pkg), core_id: String(core), die_id: "0" });
    await link(`${CPU}/cpu${n}/node${pkg}`, `sys/devices/system/node/node${pkg}`);
    if (n !== "0") await file(`${CPU}/cpu${n}/online`, "1\n");
  }
  await file(`${CPU}/cpu5/online`, "0\n");
  await files(`${CPU}/cpu0/cpufreq`, { cpuinfo_min_freq: "800000", cpuinfo_max_freq: "3500000", scaling_cur_freq: "2000000" });
  await files(`${CPU}/cpu1/cpufreq`, { scaling_cur_freq: "3000000" });
  await files(`${CPU}/cpu0/cache/index0`, { level: "1", type: "Data", size: "32K" });
  await files(`${CPU}/cpu0/cache/index1`, { level: "2", type: "Unified", size: "1024K" });
  await file(`${CPU}/isolated`, "3\n");
  await file(`${CPU}/online`, "0-4\n");
  await file(
    "proc/cpuinfo",
    [0, 1, 2, 3, 4].map((n) => cpuinfoBlock(n, n === 2 || n === 3 ? "Fake Xeon B" : "Fake Xeon A")).join("\n"),
  );

  // Memory: 2 MiB huge pages, 64 in all with 16 free; two nodes.
  await file(
    "proc/meminfo",
    "MemTotal:       16384000 kB\nMemFree:         8000000 kB\nBuffers:          100000 kB\nCached:          2000000 kB\n" +
      "HugePages_Total:      64\nHugePages_Free:       16\nHugepagesize:       2048 kB\n",
  );
  for (const n of [0, 1]) {
    await file(`sys/devices/system/node/node${n}/numastat`, "numa_hit 1\n");
    await file(
      `sys/devices/system/node/node${n}/meminfo`,
      `Node ${n} MemTotal:        8192000 kB\nNode ${n} MemFree:  4000000 kB\nNode ${n} MemUsed:  4192000 kB\n` +
        `Node ${n} HugePages_Total:    32\nNode ${n} HugePages_Free:     ${n === 0 ? 8 : 8}\n`,
    );
  }

  // PCI: the bus, drivers and IOMMU groups.
  for (const dev of [NIC, GPU, SATA, XHCI, VIRTIO]) {
    await link(`sys/bus/pci/devices/${dev.split("/").pop()}`, dev);
    await link(`${dev}/subsystem`, "sys/bus/pci");
  }
  await files(NIC, { vendor: "0x8086", device: "0x15bb", class: "0x020000", numa_node: "-1" });
  await files(GPU, { vendor: "0x8086", device: "0x3e92", class: "0x030000", numa_node: "-1" });
  await files(SATA, { vendor: "0x8086", device: "0xa352", class: "0x010601", numa_node: "-1" });
  await files(XHCI, { vendor: "0x8086", device: "0xa36d", class: "0x0c0330", numa_node: "-1" });
  await files(VIRTIO, { vendor: "0x1af4", device: "0x1041", class: "0x020000", numa_node: "-1" });
  await link(`${NIC}/driver`, "sys/bus/pci/drivers/e1000e");
  await file("sys/bus/pci/drivers/e1000e/module/version", "3.8.7-NAPI\n");
  await link(`${GPU}/driver`, "sys/bus/pci/drivers/i915");
  await link(`${SATA}/driver`, "sys/bus/pci/drivers/ahci");
  await link(`${NIC}/iommu_group`, "sys/kernel/iommu_groups/7");
  // VPD: product name, then read-only keywords (PN, SN, a vendor V0 and the RV checksum), end.
  const kw = (k: string, v: string) => Buffer.concat([Buffer.from(k), Buffer.from([v.length]), Buffer.from(v)]);
  const ro = Buffer.concat([kw("PN", "X1-PN"), kw("SN", "ABC123"), kw("V0", "5W PCIeGen3"), kw("RV", "\x00")]);
  const name = Buffer.from("Fake Gigabit NIC");
  await file(
    `${NIC}/vpd`,
    Buffer.concat([Buffer.from([0x82, name.length, 0]), name, Buffer.from([0x90, ro.length, 0]), ro, Buffer.from([0x78])]),
  );

  // The NIC's interface, and interfaces without a device (ignored).
  await files(`${NIC}/net/eno1`, { address: "00:11:22:33:44:55", type: "1", dev_port: "0", carrier: "1", speed: "1000", duplex: "full" });
  await link(`${NIC}/net/eno1/device`, NIC);
  await link("sys/class/net/eno1", `${NIC}/net/eno1`);
  // A virtio NIC, down: its interface hangs off the virtio device, whose parent is on PCI.
  await files(`${VIRTIO}/virtio0`, { vendor: "0x1af4", device: "0x0001" });
  await link(`${VIRTIO}/virtio0/subsystem`, "sys/bus/virtio");
  await link(`${VIRTIO}/virtio0/driver`, "sys/bus/virtio/drivers/virtio_net");
  await files(`${VIRTIO}/virtio0/net/eth1`, { address: "52:54:00:00:00:01", type: "1", speed: "-1", duplex: "unknown" });
  await link(`${VIRTIO}/virtio0/net/eth1/device`, `${VIRTIO}/virtio0`);
  await link("sys/class/net/eth1", `${VIRTIO}/virtio0/net/eth1`);
  await files("sys/devices/virtual/net/lo", { address: "00:00:00:00:00:00", type: "772" });
  await link("sys/class/net/lo", "sys/devices/virtual/net/lo");

  // The GPU's DRM nodes.
  await file(`${GPU}/drm/card0/dev`, "226:0\n");
  await file(`${GPU}/drm/renderD128/dev`, "226:128\n");
  await link(`${GPU}/drm/card0/device`, GPU);
  await link("sys/class/drm/card0", `${GPU}/drm/card0`);
  await link("sys/class/drm/renderD128", `${GPU}/drm/renderD128`);
  await file(`${GPU}/drm/card0-HDMI-A-1/status`, "disconnected\n");
  await link("sys/class/drm/card0-HDMI-A-1", `${GPU}/drm/card0-HDMI-A-1`);

  // The SATA disk: sda with sda1 and sda2, plus a loop device (no device link: ignored).
  await files(SCSI, { model: "FAKE SSD 512", vendor: "ATA" });
  await link(`${SCSI}/subsystem`, "sys/bus/scsi");
  const sda = `${SCSI}/block/sda`;
  await files(sda, { dev: "8:0", size: "1000215216", ro: "0", removable: "0" });
  await files(`${sda}/queue`, { physical_block_size: "4096", rotational: "0" });
  await link(`${sda}/device`, SCSI);
  await files(`${sda}/sda1`, { dev: "8:1", size: "1048576", ro: "0", partition: "1" });
  await files(`${sda}/sda2`, { dev: "8:2", size: "999164559", ro: "0", partition: "2" });
  await link("sys/class/block/sda", sda);
  await link("sys/class/block/sda1", `${sda}/sda1`);
  await link("sys/class/block/sda2", `${sda}/sda2`);
  await files("sys/devices/virtual/block/loop0", { dev: "7:0", size: "0", ro: "0", removable: "0" });
  await link("sys/class/block/loop0", "sys/devices/virtual/block/loop0");
  await file(
    "run/udev/data/b8:0",
    "S:disk/by-id/ata-FAKE_SSD_512_S123\nE:ID_ATA=1\nE:ID_ATA_SATA=1\nE:ID_SERIAL_SHORT=S123\nE:ID_REVISION=FW1\n" +
      "E:ID_MODEL_ENC=FAKE\\x20SSD\\x20512\\x20\\x20\\x20\nE:ID_ATA_ROTATION_RATE_RPM=0\n",
  );
  await link("dev/disk/by-id/ata-FAKE_SSD_512_S123", "dev/sda");
  await link("dev/disk/by-id/ata-FAKE_SSD_512_S123-part1", "dev/sda1");
  await link("dev/disk/by-path/pci-0000:00:17.0-ata-1", "dev/sda");

  // USB: root hub usb1 (a hub: ignored) and a receiver with one HID interface.
  const usb1 = `${XHCI}/usb1`;
  await files(usb1, { busnum: "1", devnum: "1", bDeviceClass: "09", idVendor: "1d6b", idProduct: "0002", speed: "480" });
  await files(`${usb1}/1-1`, { busnum: "1", devnum: "3", bDeviceClass: "00", idVendor: "046d", idProduct: "c52b", speed: "12", product: "USB Receiver" });
  await files(`${usb1}/1-1/1-1:1.0`, { bInterfaceClass: "03", bInterfaceSubClass: "01", bInterfaceNumber: "00" });
  await link(`${usb1}/1-1/1-1:1.0/driver`, "sys/bus/usb/drivers/usbhid");
  await link("sys/bus/usb/devices/usb1", usb1);
  await link("sys/bus/usb/devices/1-1", `${usb1}/1-1`);
  await link("sys/bus/usb/devices/1-1:1.0", `${usb1}/1-1/1-1:1.0`);

  // DMI.
  await files("sys/class/dmi/id", {
    product_uuid: "7fa1c0cc-2271-11b2-a85c-aab32a05d71a",
    sys_vendor: "Fake Computers Inc.",
    product_name: "Box 9000",
    product_family: "Boxes",
    product_version: "1.0",
    product_sku: "BX9K",
    product_serial: "SN-1",
    bios_vendor: "Fake BIOS",
    bios_date: "10/14/2020",
    bios_version: "1.49",
    chassis_vendor: "Fake Computers Inc.",
    chassis_type: "3",
    chassis_serial: "CH-1",
    chassis_version: "None",
    board_vendor: "Fake Boards",
    board_name: "FB-1",
    board_serial: "MB-1",
    board_version: "rev A",
  });

  await file(
    "usr/share/misc/pci.ids",
    "# pci.ids, a few lines\n8086  Intel Corporation\n\t02f0  Comet Lake SPI\n\t15bb  Ethernet Connection (7) I219-LM\n" +
      "\t\t1028 0869  Vostro 3470\n\t3e92  CoffeeLake-S GT2 [UHD Graphics 630]\n\ta352  Cannon Lake PCH SATA AHCI Controller\n" +
      "10de  NVIDIA Corporation\n\n# classes\nC 02  Network controller\n\t00  Ethernet controller\n",
  );
  await file(
    "usr/share/hwdata/usb.ids",
    "046d  Logitech, Inc.\n\tc52b  Unifying Receiver\n1d6b  Linux Foundation\n\t0002  2.0 root hub\n" +
      "C 03  Human Interface Device\n\t00  No Subclass\n\t01  Boot Interface Subclass\n\t\t02  Mouse\n",
  );
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), "lodge-resources-"));
  await buildTree();
});
after(() => rm(root, { recursive: true, force: true }));

test("cpu: sockets, cores and threads from topology, names from cpuinfo, caches and frequencies", () => {
  const cpu = cpuResources(root);
  assert.equal(cpu.total, 5, "cpu5 is offline and has no topology");
  assert.equal(cpu.sockets.length, 2);
  const [s0, s1] = cpu.sockets;
  assert.deepEqual(
    { name: s0!.name, vendor: s0!.vendor, socket: s0!.socket, min: s0!.frequency_minimum, turbo: s0!.frequency_turbo, freq: s0!.frequency },
    { name: "Fake Xeon A", vendor: "GenuineIntel", socket: 0, min: 800, turbo: 3500, freq: 2500 },
  );
  assert.deepEqual(s0!.cache, [
    { level: 1, type: "Data", size: 32768 },
    { level: 2, type: "Unified", size: 1048576 },
  ]);
  assert.deepEqual(
    s0!.cores.map((c) => [c.core, c.frequency, c.threads.map((t) => [t.id, t.thread, t.numa_node])]),
    [
      [0, 2000, [[0, 0, 0], [4, 1, 0]]],
      [1, 3000, [[1, 0, 0]]],
    ],
  );
  assert.equal(s1!.name, "Fake Xeon B");
  assert.deepEqual(
    s1!.cores.flatMap((c) => c.threads.map((t) => ({ id: t.id, numa: t.numa_node, online: t.online, isolated: t.isolated }))),
    [
      { id: 2, numa: 1, online: true, isolated: false },
      { id: 3, numa: 1, online: true, isolated: true },
    ],
  );
  // Without cpufreq or caches, LXD leaves the fields out (omitempty) rather than sending 0.
  for (const k of ["cache", "frequency", "frequency_minimum", "frequency_turbo"]) assert.ok(!(k in s1!), k);
  assert.ok(!("frequency" in s1!.cores[0]!));
});

test("memory: totals in bytes, used without caches, huge pages per host and per node", () => {
  const m = memoryResources(root);
  const KiB = 1024;
  assert.equal(m.total, 16384000 * KiB);
  assert.equal(m.used, (16384000 - 8000000 - 100000 - 2000000) * KiB);
  assert.equal(m.hugepages_size, 2048 * KiB);
  assert.equal(m.hugepages_total, 64 * 2048 * KiB);
  assert.equal(m.hugepages_used, 48 * 2048 * KiB);
  assert.deepEqual(m.nodes, [
    { numa_node: 0, hugepages_used: 24 * 2048 * KiB, hugepages_total: 32 * 2048 * KiB, used: 4192000 * KiB, total: 8192000 * KiB },
    { numa_node: 1, hugepages_used: 24 * 2048 * KiB, hugepages_total: 32 * 2048 * KiB, used: 4192000 * KiB, total: 8192000 * KiB },
  ]);
});

test("storage: a disk with its partitions, details from sysfs, udev and /dev/disk links; devices without a device are left out", () => {
  const s = storageResources(root);
  assert.equal(s.total, 3, "one disk and two partitions");
  assert.deepEqual(s.disks, [
    {
      id: "sda",
      device: "8:0",
      model: "FAKE SSD 512",
      type: "sata",
      read_only: false,
      size: 1000215216 * 512,
      removable: false,
      numa_node: 0,
      device_path: "pci-0000:00:17.0-ata-1",
      block_size: 4096,
      firmware_version: "FW1",
      rpm: 0,
      serial: "S123",
      device_id: "ata-FAKE_SSD_512_S123",
      partitions: [
        { id: "sda1", device: "8:1", read_only: false, size: 1048576 * 512, partition: 1 },
        { id: "sda2", device: "8:2", read_only: false, size: 999164559 * 512, partition: 2 },
      ],
      // No pci_address: the disk's device is a SCSI device, not the PCI controller (as in LXD).
    },
  ]);
});

test("network: physical NICs with PCI ids, names, driver and ports; lo is left out", () => {
  const n = networkResources(root);
  assert.equal(n.total, 2);
  assert.deepEqual(n.cards, [
    {
      numa_node: 0,
      pci_address: "0000:00:1f.6",
      vendor_id: "8086",
      product_id: "15bb",
      vendor: "Intel Corporation",
      product: "Ethernet Connection (7) I219-LM",
      driver: "e1000e",
      driver_version: "3.8.7-NAPI",
      ports: [
        {
          id: "eno1",
          address: "00:11:22:33:44:55",
          port: 0,
          protocol: "ethernet",
          auto_negotiation: false,
          link_detected: true,
          link_speed: 1000,
          link_duplex: "full",
        },
      ],
    },
    {
      // A virtio NIC is placed at its parent's PCI address; its ids are the virtio device's.
      driver: "virtio_net",
      driver_version: release(),
      ports: [{ id: "eth1", address: "52:54:00:00:00:01", port: 0, protocol: "ethernet", auto_negotiation: false, link_detected: false }],
      numa_node: 0,
      pci_address: "0000:00:03.0",
      vendor_id: "1af4",
      product_id: "0001",
    },
  ]);
  // Keys come in the order LXD's structs serialise in.
  assert.deepEqual(Object.keys(n.cards[0]!), ["driver", "driver_version", "ports", "numa_node", "pci_address", "vendor", "vendor_id", "product", "product_id"]);
});

test("pci: every device, named from pci.ids, with driver, IOMMU group and VPD", () => {
  const p = pciResources(root);
  assert.equal(p.total, 5);
  const nic = p.devices.find((d) => d.pci_address === "0000:00:1f.6");
  assert.deepEqual(nic, {
    driver: "e1000e",
    driver_version: "3.8.7-NAPI",
    numa_node: 0,
    pci_address: "0000:00:1f.6",
    vendor: "Intel Corporation",
    vendor_id: "8086",
    product: "Ethernet Connection (7) I219-LM",
    product_id: "15bb",
    iommu_group: 7,
    vpd: { product_name: "Fake Gigabit NIC", entries: { PN: "X1-PN", SN: "ABC123", V0: "5W PCIeGen3" } },
  });
  const usb = p.devices.find((d) => d.pci_address === "0000:00:14.0")!;
  assert.deepEqual([usb.vendor, usb.product, usb.driver, usb.driver_version, usb.vpd], ["Intel Corporation", "", "", "", {}]);
  const gpu = p.devices.find((d) => d.pci_address === "0000:00:02.0")!;
  assert.equal(gpu.driver_version, release(), "no module version: the kernel's release, as LXD does");
});

test("gpu: the DRM card with its nodes and PCI identity", () => {
  const g = gpuResources(root);
  assert.equal(g.total, 1);
  assert.deepEqual(g.cards[0], {
    numa_node: 0,
    pci_address: "0000:00:02.0",
    vendor_id: "8086",
    product_id: "3e92",
    vendor: "Intel Corporation",
    product: "CoffeeLake-S GT2 [UHD Graphics 630]",
    driver: "i915",
    driver_version: release(),
    drm: { id: 0, card_name: "card0", card_device: "226:0", render_name: "renderD128", render_device: "226:128" },
  });
});

test("usb: devices but not hubs, with interfaces named from usb.ids", () => {
  const u = usbResources(root);
  assert.deepEqual(u, {
    devices: [
      {
        bus_address: 1,
        device_address: 3,
        interfaces: [
          { class: "Human Interface Device", class_id: 3, driver: "usbhid", driver_version: release(), number: 0, subclass: "Boot Interface Subclass", subclass_id: 1 },
        ],
        vendor: "Logitech, Inc.",
        vendor_id: "046d",
        product: "USB Receiver",
        product_id: "c52b",
        speed: 12,
      },
    ],
    total: 1,
  });
});

test("system: DMI strings, the chassis type named, physical without hypervisor markers", () => {
  assert.deepEqual(systemResources(root), {
    uuid: "7fa1c0cc-2271-11b2-a85c-aab32a05d71a",
    vendor: "Fake Computers Inc.",
    product: "Box 9000",
    family: "Boxes",
    version: "1.0",
    sku: "BX9K",
    serial: "SN-1",
    type: "physical",
    firmware: { vendor: "Fake BIOS", date: "10/14/2020", version: "1.49" },
    chassis: { vendor: "Fake Computers Inc.", type: "Desktop", serial: "CH-1", version: "None" },
    motherboard: { vendor: "Fake Boards", product: "FB-1", serial: "MB-1", version: "rev A" },
  });
});

test("the whole answer matches the reference shape field by field", async () => {
  assert.deepEqual(await shapeProblems("Resources", hostResources(root)), []);
});

test("an empty tree gives empty values, never an error, still in the reference shape", async () => {
  const empty = await mkdtemp(join(tmpdir(), "lodge-resources-empty-"));
  try {
    const r = hostResources(empty);
    assert.deepEqual(r.cpu.sockets, []);
    assert.equal(r.cpu.total, 0);
    assert.equal(r.memory.total, 0);
    assert.ok(!("nodes" in r.memory));
    assert.deepEqual([r.gpu.total, r.network.total, r.storage.total, r.usb.total, r.pci.total], [0, 0, 0, 0, 0]);
    assert.deepEqual([r.system.firmware, r.system.chassis, r.system.motherboard], [null, null, null]);
    assert.deepEqual(await shapeProblems("Resources", r), []);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test("SR-IOV: virtual functions nest under their parent card and count in the total", async () => {
  const base = await mkdtemp(join(tmpdir(), "lodge-resources-sriov-"));
  try {
    const pf = `${PCI}/0000:01:00.0`;
    const vf = `${PCI}/0000:01:10.0`;
    for (const [dev, ifname] of [
      [pf, "enp1s0f0"],
      [vf, "enp1s0f0v0"],
    ] as const) {
      await files(dev, { vendor: "0x8086", device: dev === pf ? "0x1521" : "0x1520", class: "0x020000" }, base);
      await link(`${dev}/subsystem`, "sys/bus/pci", base);
      await link(`sys/bus/pci/devices/${dev.split("/").pop()}`, dev, base);
      await files(`${dev}/net/${ifname}`, { address: "02:00:00:00:00:0" + (dev === pf ? "1" : "2"), type: "1", carrier: "1", speed: "1000", duplex: "full" }, base);
      await link(`${dev}/net/${ifname}/device`, dev, base);
      await link(`sys/class/net/${ifname}`, `${dev}/net/${ifname}`, base);
    }
    await files(pf, { sriov_numvfs: "1", sriov_totalvfs: "7" }, base);
    await link(`${vf}/physfn`, pf, base);
    const n = networkResources(base);
    assert.equal(n.total, 2);
    assert.equal(n.cards.length, 1);
    const card = n.cards[0]!;
    assert.deepEqual([card.pci_address, card.sriov?.current_vfs, card.sriov?.maximum_vfs], ["0000:01:00.0", 1, 7]);
    assert.deepEqual(
      card.sriov?.vfs.map((v) => [v.pci_address, v.product_id, v.ports?.[0]?.id]),
      [["0000:01:10.0", "1520", "enp1s0f0v0"]],
    );
    assert.deepEqual(await shapeProblems("Resources", { ...hostResources(base), network: n }), []);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test("parsers: cpusets, ids files and VPD edge cases", () => {
  assert.deepEqual(parseCpuset("0-2,5,7-8"), [0, 1, 2, 5, 7, 8]);
  assert.deepEqual(parseCpuset(""), []);
  assert.deepEqual(parseCpuset("x"), []);
  const db = parseIds("abcd  Vendor\n\t0001  Product\n\t\tffff 0001  Sub\nC 0c  Serial bus\n\t03  USB controller\n");
  assert.equal(db.vendors.get("abcd")?.products.get("0001"), "Product");
  assert.equal(db.classes.get("0c")?.subclasses.get("03"), "USB controller");
  // A truncated VPD stops where the data ends.
  assert.deepEqual(parseVpd(Buffer.from([0x82, 0x10, 0x00, 0x41])), { product_name: "A" });
  assert.deepEqual(parseVpd(Buffer.alloc(0)), {});
});
