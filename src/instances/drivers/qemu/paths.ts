/**
 * Where a VM's runtime artefacts live: one directory per VM below the driver's root
 * (LODGE_DIR/virtual-machines/NAME). The NVRAM, which belongs with the disk (snapshots and
 * copies take it along), lives in the volume's state directory instead (VmSpec.stateDir).
 */
import path from "node:path";
import { InstanceDriverError } from "../../driver.js";

export interface VmPaths {
  dir: string;
  /** QEMU's arguments, one per line, as last started. */
  config: string;
  pidfile: string;
  qmp: string;
  console: string;
  agent: string;
  /** qemu-guest-agent's port, the fallback for images without Lodge's loader. */
  qga: string;
  /** QEMU's own output (stderr). */
  log: string;
  consoleLog: string;
  /** The cloud-init NoCloud seed, made at each start. */
  seed: string;
  /** The tap devices made for the NICs, so that a stop after a lodged restart still removes them. */
  taps: string;
}

/** sun_path holds 108 bytes with its terminating NUL. */
const SUN_PATH_MAX = 107;

export function vmPaths(root: string, name: string): VmPaths {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.length > 200) throw new InstanceDriverError(`"${name}" is not a valid VM name`);
  const dir = path.join(root, name);
  const p = (f: string) => path.join(dir, f);
  const paths: VmPaths = {
    dir,
    config: p("config"),
    pidfile: p("qemu.pid"),
    qmp: p("qmp.sock"),
    console: p("console.sock"),
    agent: p("agent.sock"),
    qga: p("qga.sock"),
    log: p("qemu.log"),
    consoleLog: p("console.log"),
    seed: p("seed.iso"),
    taps: p("taps.json"),
  };
  // A longer path could not be bound; say so instead of QEMU's terse error at start.
  if (Buffer.byteLength(paths.console) > SUN_PATH_MAX) throw new InstanceDriverError(`VM ${name}: its socket paths under ${root} are longer than a unix socket allows (${SUN_PATH_MAX} bytes)`);
  return paths;
}
