/**
 * Running the build's host tools with their output turned into progress lines, and commands
 * inside a rootfs being built.
 */
import { spawn } from "node:child_process";

export type ProgressFn = (line: string) => void;

export interface StreamOptions {
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Called with each non-empty output line (stdout and stderr). */
  onLine?: ProgressFn;
}

/**
 * Runs a tool without a shell, passing each output line to onLine as it comes; rejects with
 * the last lines of output when it fails.
 */
export function runStreaming(cmd: string, args: readonly string[], opts: StreamOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, signal: opts.signal, stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    const feed = (stream: NodeJS.ReadableStream) => {
      let rest = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        const lines = (rest + chunk).split(/\r?\n|\r/);
        rest = lines.pop() ?? "";
        for (const l of lines) emit(l);
      });
      stream.on("end", () => rest && emit(rest));
    };
    const emit = (line: string) => {
      if (!line.trim()) return;
      tail.push(line);
      if (tail.length > 5) tail.shift();
      opts.onLine?.(line);
    };
    feed(child.stdout!);
    feed(child.stderr!);
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "ENOENT" ? new Error(`${cmd} is not installed (not found on PATH)`) : e),
    );
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} failed (${signal ? `signal ${signal}` : `exit ${code}`}): ${tail.join("; ") || "no output"}`));
    });
  });
}

/**
 * The shell script that prepares a throw-away mount namespace for a chroot: fresh proc and
 * sysfs, and a tmpfs /dev with the usual nodes. Everything it mounts lives in that namespace
 * only and vanishes when the command ends, even if it is killed, so no mount is ever left
 * inside the rootfs (where a later `rm -rf` could reach through it into the host).
 */
const ENTER_ROOTFS = `
set -e
r="$1"
cmd="$2"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys" 2>/dev/null || true
mount -t tmpfs -o mode=0755,size=16m tmpfs "$r/dev"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $n; mknod -m 0666 "$r/dev/$1" c "$2" "$3"
done
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" 2>/dev/null && ln -s pts/ptmx "$r/dev/ptmx" || true
ln -s /proc/self/fd "$r/dev/fd"
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \\
  DEBIAN_FRONTEND=noninteractive chroot "$r" /bin/sh -c "$cmd"
`;

/**
 * Runs a shell command chrooted into rootfs, in its own mount and pid namespaces: daemons a
 * package script starts die with the command, and mounts never outlive it.
 */
export function runInRootfs(rootfs: string, command: string, opts: StreamOptions = {}): Promise<void> {
  return runStreaming(
    "unshare",
    ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--", "/bin/sh", "-c", ENTER_ROOTFS, "sh", rootfs, command],
    opts,
  );
}
