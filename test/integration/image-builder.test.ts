/**
 * The image builder end to end, as root: real busybox and debootstrap rootfs, real tar and
 * mksquashfs, and the busybox image booted as a liblxc container to prove it runs.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { parse as parseYaml } from "yaml";
import { buildImage, loadDefinition, parseDefinition, type BuildResult } from "../../src/images/builder/index.js";
import { lxdArchitecture } from "../../src/images/builder/architecture.js";
import { inspectImage } from "../../src/images/inspect.js";
import { run } from "../../src/sys/exec.js";
import { TestDaemon } from "../helpers/daemon.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const HOST_ARCH = lxdArchitecture(os.machine());

async function tempDir(t: TestContext, prefix = "lodge-imgtest-"): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function sha256sum(...files: string[]): Promise<string> {
  const r = await run("sh", ["-c", 'cat "$@" | sha256sum', "sh", ...files]);
  return r.stdout.split(" ")[0]!;
}

/** The tarball's member names, without a leading "./". */
async function tarMembers(file: string): Promise<string[]> {
  return (await run("tar", ["-tf", file])).stdout.split("\n").filter(Boolean).map((m) => m.replace(/^\.\//, ""));
}

/** metadata.yaml read back from a (metadata or unified) tarball. */
async function tarMetadata(file: string): Promise<any> {
  return parseYaml((await run("tar", ["-xOf", file, "metadata.yaml"])).stdout);
}

/** Checks metadata.yaml against LXD's rules and the definition it came from. */
function checkMetadata(meta: any, r: BuildResult, want: { os: string; release: RegExp; templates: string[] }): void {
  assert.deepEqual({ ...meta }, r.metadata, "metadata.yaml is what the builder reported");
  assert.equal(meta.architecture, HOST_ARCH);
  const now = Date.now() / 1000;
  assert.ok(Number.isInteger(meta.creation_date) && Math.abs(meta.creation_date - now) < 3600, `creation_date ${meta.creation_date} is epoch seconds`);
  assert.equal(meta.expiry_date, meta.creation_date + 30 * 86400);
  assert.deepEqual(Object.keys(meta.properties).sort(), ["architecture", "description", "os", "release", "serial", "variant"]);
  assert.equal(meta.properties.os, want.os);
  assert.match(meta.properties.release, want.release);
  assert.equal(meta.properties.architecture, HOST_ARCH);
  assert.equal(meta.properties.variant, "default");
  assert.match(meta.properties.serial, /^\d{8}_\d{4}$/);
  assert.deepEqual(Object.keys(meta.templates).sort(), want.templates);
  for (const [p, tpl] of Object.entries<any>(meta.templates)) {
    assert.ok(p.startsWith("/"), p);
    assert.ok(tpl.when.every((w: string) => ["create", "copy", "start", "rename"].includes(w)), `${p}: ${tpl.when}`);
    assert.match(tpl.template, /^[\w.-]+\.tpl$/);
  }
  assert.deepEqual(meta.templates["/etc/hostname"], { when: ["create", "copy"], template: "hostname.tpl" });
}

/**
 * Boots rootfs as a privileged liblxc container without network under a private lxcpath,
 * checks that init runs and that lxc-attach works, then stops and destroys it and removes
 * everything it made (also when an assertion fails).
 */
async function assertRunsUnderLxc(
  t: TestContext,
  rootfs: string,
  expectInit: RegExp,
  more?: (sh: (cmd: string) => Promise<string>) => Promise<void>,
): Promise<void> {
  const lxcpath = await tempDir(t, "lodge-lxcpath-");
  const name = `lodge-imgtest-${process.pid}-${randomBytes(3).toString("hex")}`;
  const p = ["-n", name, "-P", lxcpath];
  await mkdir(path.join(lxcpath, name));
  const config = [
    "lxc.include = /usr/share/lxc/config/common.conf",
    `lxc.uts.name = ${name}`,
    `lxc.rootfs.path = dir:${rootfs}`,
    "lxc.net.0.type = empty",
    "lxc.autodev = 1",
    "lxc.tty.max = 0",
    "lxc.console.path = none",
    "lxc.apparmor.profile = unconfined",
    `lxc.log.file = ${path.join(lxcpath, "lxc.log")}`,
    "lxc.log.level = INFO",
  ].join("\n");
  await writeFile(path.join(lxcpath, name, "config"), config + "\n");
  t.after(async () => {
    await run("lxc-stop", [...p, "-k"], { allowFail: true });
    await run("lxc-destroy", [...p, "-f"], { allowFail: true });
  });
  const log = async () => readFile(path.join(lxcpath, "lxc.log"), "utf8").catch(() => "(no log)");

  const start = await run("lxc-start", [...p, "-d"], { allowFail: true });
  assert.equal(start.code, 0, `lxc-start failed: ${start.stderr}\n${await log()}`);
  await run("lxc-wait", [...p, "-s", "RUNNING", "-t", "10"]);
  const r = await run("lxc-attach", [...p, "--clear-env", "--", "/bin/sh", "-c", "echo ok"], { allowFail: true });
  assert.equal(r.stdout, "ok\n", `lxc-attach: ${r.stderr}\n${await log()}`);
  const init = await run("lxc-attach", [...p, "--clear-env", "--", "/bin/cat", "/proc/1/comm"]);
  assert.match(init.stdout.trim(), expectInit);
  if (more) await more(async (cmd) => (await run("lxc-attach", [...p, "--clear-env", "--", "/bin/sh", "-c", cmd])).stdout);

  const stop = await run("lxc-stop", [...p, "-t", "30"], { allowFail: true });
  assert.equal(stop.code, 0, `lxc-stop: ${stop.stderr}`);
  const info = await run("lxc-info", [...p, "-s", "-H"]);
  assert.equal(info.stdout.trim(), "STOPPED");
  await run("lxc-destroy", p);
  assert.deepEqual(await readdir(lxcpath).then((l) => l.filter((f) => f !== "lxc.log")), [], "lxc-destroy removed the container");
  await rm(lxcpath, { recursive: true, force: true });
}

test("busybox image, unified: LXD's layout, metadata and fingerprint, and it runs under liblxc", async (t) => {
  const out = await tempDir(t);
  const work = await tempDir(t);
  const def = await loadDefinition(path.join(ROOT, "images/busybox.yaml"));
  const lines: string[] = [];
  const r = await buildImage(def, { outDir: out, workDir: work, format: "unified", onProgress: (l) => lines.push(l) });

  assert.equal(r.format, "unified");
  assert.equal(r.files.length, 1);
  const [file] = r.files as [string];
  assert.equal(path.dirname(file), out);
  assert.match(file, /busybox-[\d.]+-\w+-default\.tar\.xz$/);
  assert.deepEqual(await readdir(out), [path.basename(file)], "only the image is left in outDir");
  assert.deepEqual(await readdir(work), [], "the work directory is gone");
  assert.equal(r.size, (await stat(file)).size);
  assert.equal(r.fingerprint, await sha256sum(file), "unified: the fingerprint is the tarball's sha256");
  assert.ok(lines.some((l) => l.includes("packing unified image")), lines.join("\n"));

  const members = await tarMembers(file);
  assert.equal(members[0], "metadata.yaml", "metadata.yaml comes first");
  for (const m of ["templates/hostname.tpl", "templates/hosts.tpl", "rootfs/sbin/init", "rootfs/bin/sh", "rootfs/bin/busybox", "rootfs/etc/inittab"]) {
    assert.ok(members.includes(m), `${m} in the tarball`);
  }
  assert.ok(members.every((m) => /^(metadata\.yaml|templates\/|rootfs\/)/.test(m)), "nothing but metadata.yaml, templates/ and rootfs/");
  checkMetadata(await tarMetadata(file), r, { os: "busybox", release: /^\d+\.\d+/, templates: ["/etc/hostname", "/etc/hosts"] });
  assert.equal((await inspectImage({ metadata: file })).type, "container", "Lodge's image store accepts it");

  const unpacked = await tempDir(t);
  await run("tar", ["-xf", file, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", unpacked]);
  const rootfs = path.join(unpacked, "rootfs");
  assert.match(await readFile(path.join(unpacked, "templates/hostname.tpl"), "utf8"), /\{\{ container\.name \}\}/);
  for (const f of ["sbin/init", "bin/sh"]) {
    assert.ok((await lstat(path.join(rootfs, f))).isSymbolicLink(), f);
    assert.equal(await readlink(path.join(rootfs, f)), "/bin/busybox", f);
  }
  assert.equal((await stat(path.join(rootfs, "bin/sh"))).mode & 0o111, 0o111, "/bin/sh resolves to an executable");
  assert.equal((await stat(path.join(rootfs, "tmp"))).mode & 0o7777, 0o1777);
  assert.equal((await stat(path.join(rootfs, "etc/passwd"))).uid, 0);
  assert.match(await readFile(path.join(rootfs, "etc/os-release"), "utf8"), /^ID=busybox$/m);
  assert.equal(await readFile(path.join(rootfs, "etc/motd"), "utf8"), "Welcome to a Lodge busybox container.\n");

  await assertRunsUnderLxc(t, rootfs, /^init$/, async (sh) => {
    assert.equal(await sh("grep -c '^[^ ]* /proc ' /proc/mounts"), "1\n", "rcS mounts /proc only when it is missing");
    assert.equal(await sh("ps -o comm | grep -c '^init$'"), "1\n");
  });
});

test("busybox image, split: metadata tarball + rootfs.squashfs, fingerprint over both, and it runs", async (t) => {
  const out = await tempDir(t);
  const def = await loadDefinition(path.join(ROOT, "images/busybox.yaml"));
  const r = await buildImage(def, { outDir: out, format: "split", compression: "gzip" });

  assert.equal(r.files.length, 2);
  const [meta, squash] = r.files as [string, string];
  assert.match(meta, /\.meta\.tar\.gz$/);
  assert.match(squash, /\.squashfs$/);
  assert.deepEqual((await readdir(out)).sort(), [path.basename(meta), path.basename(squash)].sort());
  assert.equal(r.fingerprint, await sha256sum(meta, squash), "split: sha256 over metadata then rootfs bytes");
  assert.equal(r.size, (await stat(meta)).size + (await stat(squash)).size);

  assert.deepEqual((await tarMembers(meta)).sort(), ["metadata.yaml", "templates/", "templates/hostname.tpl", "templates/hosts.tpl"]);
  checkMetadata(await tarMetadata(meta), r, { os: "busybox", release: /^\d+\.\d+/, templates: ["/etc/hostname", "/etc/hosts"] });
  assert.equal((await inspectImage({ metadata: meta, rootfs: squash })).type, "container", "Lodge's image store accepts it");

  const head = await readFile(squash).then((b) => b.subarray(0, 4).toString("latin1"));
  assert.equal(head, "hsqs", "the rootfs is a SquashFS image");
  const listing = (await run("unsquashfs", ["-lln", squash])).stdout;
  assert.match(listing, /^lrwxrwxrwx 0\/0 .* squashfs-root\/sbin\/init -> \/bin\/busybox$/m);
  assert.match(listing, /^lrwxrwxrwx 0\/0 .* squashfs-root\/bin\/sh -> \/bin\/busybox$/m);
  assert.match(listing, /^-rwxr-xr-x 0\/0 .* squashfs-root\/bin\/busybox$/m);
  assert.doesNotMatch(listing, /squashfs-root\/rootfs\//, "the rootfs is at the SquashFS root, not under rootfs/");

  const unpacked = await tempDir(t);
  const rootfs = path.join(unpacked, "rootfs");
  await run("unsquashfs", ["-q", "-n", "-d", rootfs, squash]);
  await assertRunsUnderLxc(t, rootfs, /^init$/);
});

test("a failed build leaves nothing behind and names the failing step", async (t) => {
  const out = await tempDir(t);
  const work = await tempDir(t);
  const def = parseDefinition(
    [
      "image: {distribution: busybox}",
      "source: {type: busybox}",
      "actions:",
      "  - {trigger: post-unpack, command: 'touch /made-it'}",
      "  - {trigger: post-packages, command: 'echo about to fail; exit 3'}",
    ].join("\n"),
  );
  await assert.rejects(buildImage(def, { outDir: out, workDir: work }), /actions\[1\] \(post-packages\) failed: .*exit 3.*about to fail/);
  assert.deepEqual(await readdir(out), []);
  assert.deepEqual(await readdir(work), []);
});

test("actions run chrooted in the rootfs, files land inside it", async (t) => {
  const out = await tempDir(t);
  const def = parseDefinition(
    [
      "image: {distribution: busybox, release: test}",
      "source: {type: busybox}",
      "files: [{path: /etc/lodge/greeting, content: hello, mode: '0600'}]",
      "actions:",
      "  - {trigger: post-unpack, command: 'test -c /dev/null && grep -q \" /proc proc \" /proc/mounts && echo chrooted > /etc/marker && ls /proc/1/ >/dev/null'}",
    ].join("\n"),
  );
  const r = await buildImage(def, { outDir: out, format: "unified", compression: "gzip" });
  assert.match(r.files[0]!, /busybox-test-\w+-default\.tar\.gz$/);
  const read = async (m: string) => (await run("tar", ["-xOf", r.files[0]!, m])).stdout;
  assert.equal(await read("rootfs/etc/marker"), "chrooted\n");
  assert.equal(await read("rootfs/etc/lodge/greeting"), "hello");
  assert.match((await run("tar", ["-tvf", r.files[0]!, "rootfs/etc/lodge/greeting"])).stdout, /^-rw------- 0\/0 /);
  const members = await tarMembers(r.files[0]!);
  assert.ok(!members.some((m) => /^rootfs\/dev\/./.test(m)), "the chroot's /dev did not leak into the image");
});

/**
 * Debian's own DHCP client (ifupdown's dhclient, started by networking.service under systemd)
 * gets a lease on a managed network: the split image imported into a real lodged through the
 * real lxc client, launched with --network, its address shown by `lxc list` and its lease by
 * `lxc network list-leases` under its hostname.
 */
async function assertGetsLeaseOnManagedNetwork(t: TestContext, meta: string, squash: string): Promise<void> {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", meta, squash, "--alias", "deb"], { timeoutMs: 300_000 });
  const net = `lt${randomBytes(3).toString("hex")}`;
  t.after(() => d.client.delete(`/1.0/networks/${net}`).catch(() => {}));
  await d.lxc(["network", "create", net, "ipv6.address=none"]);
  const gw = (await d.client.get<{ config: Record<string, string> }>(`/1.0/networks/${net}`)).config["ipv4.address"]!;
  const prefix = gw.split(".").slice(0, 3).join(".") + ".";
  assert.match(gw, /\/24$/, `the auto subnet is a /24: ${gw}`);
  await d.lxc(["launch", "deb", "d1", "--network", net], { timeoutMs: 120_000 });

  const t0 = Date.now();
  let listed = "";
  let ip: string | undefined;
  while (Date.now() - t0 < 60_000) {
    listed = (await d.lxc(["list", "d1", "--format", "csv", "-c", "4"])).stdout;
    ip = /(\d+\.\d+\.\d+\.\d+) \(eth0\)/.exec(listed)?.[1];
    if (ip) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!ip) {
    const why = await d.lxc(["exec", "d1", "--", "sh", "-c", "systemctl --no-pager status networking; journalctl --no-pager -u networking | tail -30; ip addr"], { allowFail: true });
    assert.fail(`no IPv4 on eth0 in lxc list after 60 s (last: ${JSON.stringify(listed)}):\n${why.stdout}${why.stderr}`);
  }
  assert.ok(ip.startsWith(prefix), `${ip} is in ${gw}`);
  const leases = (await d.lxc(["network", "list-leases", net, "--format", "csv"])).stdout;
  assert.match(leases, new RegExp(`^d1,[0-9a-f:]+,${ip.replace(/\./g, "\\.")},`, "m"), `list-leases shows d1's lease:\n${leases}`);
  // The client that got it is Debian's dhclient, run by ifupdown under systemd.
  const ps = await d.lxc(["exec", "d1", "--", "sh", "-c", "cat /proc/1/comm; pgrep -a dhclient"]);
  assert.match(ps.stdout, /^systemd\n/);
  assert.match(ps.stdout, /dhclient .*eth0/, ps.stdout);
  t.diagnostic(`Debian's dhclient got ${ip} on ${net} (${gw}) ${((Date.now() - t0) / 1000).toFixed(1)} s after lxc launch returned; ${ps.stdout.split("\n")[1]}`);
  await d.lxc(["delete", "--force", "d1"]);
}

test("Debian bookworm from debootstrap, split: a systemd container image that boots under liblxc", async (t) => {
  const out = await tempDir(t);
  const work = await tempDir(t);
  const def = await loadDefinition(path.join(ROOT, "images/debian-bookworm.yaml"));
  const lines: string[] = [];
  const r = await buildImage(def, { outDir: out, workDir: work, format: "split", onProgress: (l) => lines.push(l) });
  assert.deepEqual(await readdir(work), [], "the work directory is gone");
  assert.ok(lines.some((l) => l.startsWith("debootstrap: I: Base system installed successfully")), "debootstrap progress is reported");

  const [meta, squash] = r.files as [string, string];
  assert.deepEqual((await readdir(out)).sort(), [path.basename(meta), path.basename(squash)].sort());
  assert.equal(r.fingerprint, await sha256sum(meta, squash));
  checkMetadata(await tarMetadata(meta), r, { os: "debian", release: /^bookworm$/, templates: ["/etc/hostname", "/etc/hosts"] });

  const listing = (await run("unsquashfs", ["-lln", squash])).stdout;
  // bookworm merges /usr: /sbin is a link to usr/sbin, so look in both places.
  const lines_ = listing.split("\n");
  const entry = (p: string) =>
    [p, `usr/${p}`].map((q) => lines_.find((l) => l.endsWith(` squashfs-root/${q}`) || l.includes(` squashfs-root/${q} -> `))).find(Boolean);
  assert.match(entry("sbin/init") ?? "", / -> \/lib\/systemd\/systemd$/, "systemd is init");
  for (const p of ["bin/less", "bin/ps", "sbin/dhclient", "sbin/ifup", "bin/ip"]) assert.ok(entry(p), `${p} is installed`);
  assert.match(entry("etc/machine-id") ?? "", /^-r--r--r-- 0\/0\s+0 /, "machine-id is empty");
  assert.match(entry("etc/resolv.conf") ?? "", /^-\S+ 0\/0\s+0 /, "no resolver of the build host");
  assert.match(entry("dev/null") ?? "", /^crw-rw-rw- 0\/0\s+1,\s*3 /, "device nodes are kept");
  assert.doesNotMatch(listing, /var\/lib\/apt\/lists\/\S+_Packages/, "apt lists removed");
  assert.doesNotMatch(listing, /var\/cache\/apt\/(archives\/\S+\.deb|\S+\.bin)$/m, "apt caches removed");
  assert.doesNotMatch(listing, /etc\/ssh\/ssh_host_/, "no ssh host keys");
  assert.doesNotMatch(listing, /usr\/sbin\/policy-rc\.d/, "the build's policy-rc.d is gone");

  const unpacked = await tempDir(t);
  const rootfs = path.join(unpacked, "rootfs");
  await run("unsquashfs", ["-q", "-n", "-d", rootfs, squash]);
  assert.equal((await inspectImage({ metadata: meta, rootfs: squash })).type, "container", "Lodge's image store accepts it");
  await assertGetsLeaseOnManagedNetwork(t, meta, squash);
  await rm(squash); // keep the disk use of this test down
  assert.match(await readFile(path.join(rootfs, "etc/network/interfaces"), "utf8"), /^iface eth0 inet dhcp$/m);
  assert.match(await readFile(path.join(rootfs, "etc/apt/sources.list"), "utf8"), /bookworm-security/);
  assert.equal(await readFile(path.join(rootfs, "etc/default/locale"), "utf8"), "LANG=C.UTF-8\n", "the post-packages action ran");
  await assertRunsUnderLxc(t, rootfs, /^systemd$/, async (sh) => {
    assert.match(await sh("cat /etc/machine-id"), /^[0-9a-f]{32}\n$/, "systemd made a machine-id on first boot");
  });
});
