/**
 * Architecture names: LXD's (the kernel's, as in metadata.yaml) and Debian's (for debootstrap).
 */
const LXD_TO_DEBIAN: Record<string, string> = {
  x86_64: "amd64",
  i686: "i386",
  aarch64: "arm64",
  armv7l: "armhf",
  ppc64le: "ppc64el",
  s390x: "s390x",
  riscv64: "riscv64",
};

/** LXD's name for an architecture given in either naming, or undefined when unknown. */
export function lxdArchitecture(name: string): string | undefined {
  if (name in LXD_TO_DEBIAN) return name;
  return Object.keys(LXD_TO_DEBIAN).find((k) => LXD_TO_DEBIAN[k] === name);
}

/** Debian's name (dpkg --print-architecture) for an LXD architecture name. */
export function debianArchitecture(lxdName: string): string {
  const d = LXD_TO_DEBIAN[lxdName];
  if (!d) throw new Error(`no Debian architecture for "${lxdName}"`);
  return d;
}
