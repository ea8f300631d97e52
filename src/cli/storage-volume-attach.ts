/**
 * `lodge storage volume attach|detach POOL VOLUME INSTANCE …` and `attach-profile|detach-profile
 * POOL VOLUME PROFILE …`: a disk device `{type: disk, pool, source: VOLUME, path}` added to or
 * removed from the holder, with the same ETag-guarded read-change-write as the device verbs.
 * As lxc: the device is named after the volume unless a name is given, and a block volume
 * (for VMs) takes no path.
 */
import type { Command } from "commander";
import { UsageError } from "./exit.js";
import { globalsOf } from "./globals.js";
import { updateInstance } from "./instance-ref.js";
import { updateProfile } from "./profile-ref.js";
import { fetchVolume, parseVolumeArg, type VolumeRef, withStorage } from "./storage-ref.js";
import type { StorageVolume } from "./storage-types.js";

type Devices = Record<string, Record<string, string>>;

/**
 * The words after the holder: `[DEVICE] PATH` for a filesystem volume (`PATH` alone names the
 * device after the volume), `[DEVICE]` for a block volume.
 */
export function attachWords(volume: string, words: readonly string[], block: boolean): { device: string; path?: string } {
  if (words.length > 2) throw new UsageError(`Too many arguments: expected [DEVICE] ${block ? "" : "PATH"}`.trimEnd());
  if (block) {
    if (words.length > 1) throw new UsageError(`Volume "${volume}" is a block volume: it takes no path (only an optional device name)`);
    return { device: words[0] ?? volume };
  }
  if (words.length === 0) throw new UsageError(`A path is needed for filesystem volume "${volume}": lodge storage volume attach POOL VOLUME INSTANCE [DEVICE] PATH`);
  const [device, path] = words.length === 2 ? [words[0]!, words[1]!] : [volume, words[0]!];
  if (!path.startsWith("/")) throw new UsageError(`Invalid path "${path}": the mount point inside the instance, an absolute path`);
  return { device, path };
}

/** The disk device that attaches `v` (a custom volume). */
export function diskFor(v: VolumeRef, path?: string): Record<string, string> {
  const disk: Record<string, string> = { type: "disk", pool: v.pool, source: v.name };
  if (path !== undefined) disk.path = path;
  return disk;
}

const onVolume = (d: Record<string, string>, v: VolumeRef) => d.type === "disk" && d.pool === v.pool && d.source === v.name;

/**
 * The device to remove for `detach`: the named one (which must exist), else the only disk of
 * the volume. `inherited` are devices the holder gets from its profiles.
 */
export function diskToDetach(devices: Devices, v: VolumeRef, where: string, dev?: string, inherited: Devices = {}): string {
  if (dev !== undefined) {
    if (devices[dev]) return dev;
    if (inherited[dev]) throw new UsageError(`Device "${dev}" comes from a profile: detach it from the profile (lodge storage volume detach-profile)`);
    throw new UsageError(`The specified device doesn't exist: no device "${dev}" ${where}`);
  }
  const found = Object.keys(devices).filter((n) => onVolume(devices[n]!, v));
  if (found.length > 1) throw new UsageError(`More than one device matches, specify the device name (${found.sort().join(", ")})`);
  if (found.length === 0) {
    const fromProfile = Object.keys(inherited).find((n) => onVolume(inherited[n]!, v));
    if (fromProfile) throw new UsageError(`Device "${fromProfile}" comes from a profile: detach it from the profile (lodge storage volume detach-profile)`);
    throw new UsageError(`No device found for this storage volume: no disk ${where} uses volume "${v.name}" of pool "${v.pool}"`);
  }
  return found[0]!;
}

function addDisk(devices: Devices, dev: string, disk: Record<string, string>, where: string): void {
  if (dev in devices) throw new UsageError(`Device already exists: ${dev} (${where}); name another device: … [DEVICE] PATH`);
  devices[dev] = disk;
}

function attachable(pool: string, word: string): VolumeRef {
  const v = parseVolumeArg(pool, word, { snapshots: false });
  if (v.type !== "custom") throw new UsageError('Only "custom" volumes can be attached to instances');
  return v;
}

const isBlock = (vol: StorageVolume) => vol.content_type === "block";

export function registerVolumeAttach(volume: Command): void {
  volume
    .command("attach")
    .description("Attach a custom volume to an instance: lodge storage volume attach POOL VOLUME INSTANCE [DEVICE] PATH (no PATH for a block volume)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<instance>", "Instance name")
    .argument("[device-and-path...]", "[DEVICE] PATH: the device name (default: the volume's) and the mount point")
    .action(async (pool: string, word: string, name: string, rest: string[], _opts, cmd: Command) => {
      const v = attachable(pool, word);
      let device = "";
      await withStorage(globalsOf(cmd), async (c) => {
        const { volume: vol } = await fetchVolume(c, v);
        const w = attachWords(v.name, rest, isBlock(vol));
        device = w.device;
        await updateInstance(c, name, (put) => addDisk(put.devices, w.device, diskFor(v, w.path), `on instance "${name}"`));
      });
      process.stdout.write(`Device ${device} added to ${name}\n`);
    });

  volume
    .command("attach-profile")
    .description("Attach a custom volume to a profile: lodge storage volume attach-profile POOL VOLUME PROFILE [DEVICE] PATH")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<profile>", "Profile name")
    .argument("[device-and-path...]", "[DEVICE] PATH: the device name (default: the volume's) and the mount point")
    .action(async (pool: string, word: string, name: string, rest: string[], _opts, cmd: Command) => {
      const v = attachable(pool, word);
      let device = "";
      await withStorage(globalsOf(cmd), async (c) => {
        const { volume: vol } = await fetchVolume(c, v);
        const w = attachWords(v.name, rest, isBlock(vol));
        device = w.device;
        await updateProfile(c, name, (put) => addDisk(put.devices, w.device, diskFor(v, w.path), `in profile "${name}"`));
      });
      process.stdout.write(`Device ${device} added to ${name}\n`);
    });

  volume
    .command("detach")
    .description("Detach a custom volume from an instance: removes its disk device")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<instance>", "Instance name")
    .argument("[device]", "Device name (needed when several use the volume)")
    .action(async (pool: string, word: string, name: string, dev: string | undefined, _opts, cmd: Command) => {
      const v = attachable(pool, word);
      let removed = "";
      await withStorage(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put, current) => {
          removed = diskToDetach(put.devices, v, `on instance "${name}"`, dev, current.expanded_devices ?? {});
          delete put.devices[removed];
        }),
      );
      process.stdout.write(`Device ${removed} removed from ${name}\n`);
    });

  volume
    .command("detach-profile")
    .description("Detach a custom volume from a profile: removes its disk device")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<profile>", "Profile name")
    .argument("[device]", "Device name (needed when several use the volume)")
    .action(async (pool: string, word: string, name: string, dev: string | undefined, _opts, cmd: Command) => {
      const v = attachable(pool, word);
      let removed = "";
      await withStorage(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          removed = diskToDetach(put.devices, v, `in profile "${name}"`, dev);
          delete put.devices[removed];
        }),
      );
      process.stdout.write(`Device ${removed} removed from ${name}\n`);
    });
}
