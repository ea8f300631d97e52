import assert from "node:assert/strict";
import { test } from "node:test";
import { checkMembers, normalizeMember } from "../../src/images/members.js";
import { readTar, type TarMember } from "../../src/images/tar-reader.js";

const f = (name: string): TarMember => ({ name, type: "file", linkname: "", size: 0 });
const dir = (name: string): TarMember => ({ name, type: "dir", linkname: "", size: 0 });
const sym = (name: string, to: string): TarMember => ({ name, type: "symlink", linkname: to, size: 0 });
const hard = (name: string, to: string): TarMember => ({ name, type: "hardlink", linkname: to, size: 0 });

test("a normal rootfs passes, symlinks may point anywhere", () => {
  checkMembers([
    dir("./"),
    f("./metadata.yaml"),
    dir("rootfs/"),
    dir("rootfs/bin"),
    f("rootfs/bin/busybox"),
    sym("rootfs/bin/sh", "busybox"),
    sym("rootfs/etc/mtab", "/proc/self/mounts"),
    sym("rootfs/lib64", "../lib"),
    hard("rootfs/bin/ls", "rootfs/bin/busybox"),
    { name: "rootfs/dev/null", type: "char", linkname: "", size: 0 },
  ]);
});

test("absolute paths and .. components are refused", () => {
  assert.throws(() => checkMembers([f("/etc/passwd")]), /"\/etc\/passwd" has an absolute path/);
  assert.throws(() => checkMembers([f("../../etc/passwd")]), /"\.\.\/\.\.\/etc\/passwd" contains "\.\."/);
  assert.throws(() => checkMembers([f("rootfs/a/../../x")]), /contains "\.\."/);
});

test("hard links must stay inside and not go through symlinks", () => {
  assert.throws(() => checkMembers([hard("rootfs/x", "/etc/shadow")]), /hard link to "\/etc\/shadow"/);
  assert.throws(() => checkMembers([hard("rootfs/x", "../etc/shadow")]), /hard link to "\.\.\/etc\/shadow"/);
  assert.throws(
    () => checkMembers([sym("rootfs/etc", "/etc"), hard("rootfs/x", "rootfs/etc/shadow")]),
    /hard link through the symlink "rootfs\/etc"/,
  );
});

test("nothing may be written through or over a symlink of the archive", () => {
  assert.throws(
    () => checkMembers([sym("rootfs/evil", "/tmp"), f("rootfs/evil/x")]),
    /"rootfs\/evil\/x" would be written through the symlink "rootfs\/evil"/,
  );
  assert.throws(() => checkMembers([sym("./a", "/"), dir("a/b/"), f("a/b/c")]), /through the symlink "a"/);
  assert.throws(() => checkMembers([sym("rootfs/p", "/etc/passwd"), f("rootfs/p")]), /would replace a symlink/);
  // A symlink defined after the file is harmless.
  checkMembers([f("rootfs/evil/x"), sym("rootfs/other", "/tmp")]);
});

test("device nodes are refused outside /dev", () => {
  assert.throws(() => checkMembers([{ name: "rootfs/sda", type: "block", linkname: "", size: 0 }]), /device node outside \/dev/);
});

test("member names must be plain: at most one leading \"./\", no \"//\" or \".\" components", () => {
  checkMembers([dir("./"), dir("."), dir("./rootfs/"), f("./rootfs/bin/sh"), dir("rootfs/dev"), f("metadata.yaml")]);
  const dev = (name: string): TarMember => ({ name, type: "block", linkname: "", size: 0 });
  for (const name of ["rootfs/./dev/x", "rootfs//dev/x", "././rootfs/dev/x", ".//rootfs/dev/x", "rootfs/dev/x/", "rootfs/dev/."])
    assert.throws(() => checkMembers([dev(name)]), new RegExp(`"${name.replace(/\./g, "\\.")}" is not a plain path`), name);
  assert.throws(() => checkMembers([f("rootfs/etc/passwd/")]), /is not a plain path/, "a trailing / only on a directory");
  assert.throws(() => checkMembers([f("")]), /is not a plain path|must be a directory/);
  assert.throws(() => checkMembers([sym("./", "/")]), /names the archive's root, which must be a directory/);
  assert.throws(() => checkMembers([f("rootfs/etc/a\0/x")]), /contains a NUL byte/);
  assert.throws(() => checkMembers([hard("rootfs/x", "rootfs/etc/a\0")]), /contains a NUL byte/);
});

test("device nodes: under rootfs/dev/ in an image, under dev/ in a rootfs archive, and never hard-linked", () => {
  const dev = (name: string): TarMember => ({ name, type: "char", linkname: "", size: 0 });
  checkMembers([dev("rootfs/dev/null"), dev("./rootfs/dev/sub/x")]);
  checkMembers([dev("dev/null"), dev("./dev/sub/x")], "rootfs tarball", "rootfs");
  assert.throws(() => checkMembers([dev("dev/x")]), /"dev\/x" is a device node outside \/dev \(rootfs\/dev\/\)/);
  assert.throws(() => checkMembers([dev("rootfs/dev/x")], "rootfs tarball", "rootfs"), /device node outside \/dev \(dev\/\)/);
  assert.throws(() => checkMembers([dev("etc/x")], "rootfs tarball", "rootfs"), /device node outside \/dev/);
  assert.throws(() => checkMembers([dev("rootfs/dev/x"), hard("rootfs/etc/x", "rootfs/dev/x")]), /hard link to the device node "rootfs\/dev\/x"/);
  assert.throws(() => checkMembers([dev("./rootfs/dev/x"), hard("rootfs/etc/x", "rootfs/dev/x")]), /hard link to the device node/);
});

test("in an image, metadata.yaml, templates/ and rootfs/ are what their names say", () => {
  const fifo = (name: string): TarMember => ({ name, type: "fifo", linkname: "", size: 0 });
  checkMembers([f("./metadata.yaml"), dir("templates/"), dir("templates/sub/"), f("templates/sub/a.tpl"), dir("rootfs/"), f("rootfs.img")]);
  assert.throws(() => checkMembers([sym("templates/evil.tpl", "/etc/shadow")]), /"templates\/evil\.tpl" is a symlink under templates\/, where only regular files and directories/);
  assert.throws(() => checkMembers([fifo("./templates/x.tpl")]), /is a FIFO under templates\//);
  assert.throws(() => checkMembers([f("templates/a.tpl"), hard("templates/b.tpl", "templates/a.tpl")]), /"templates\/b\.tpl" is a hard link/);
  assert.throws(() => checkMembers([f("templates/a.tpl"), hard("rootfs/etc/a", "templates/a.tpl")]), /must not share its content/);
  assert.throws(() => checkMembers([f("metadata.yaml"), hard("rootfs/m", "./metadata.yaml")]), /must not share its content/);
  assert.throws(() => checkMembers([f("metadata.yaml"), sym("metadata.yaml", "/etc/shadow")]), /"metadata\.yaml" is a symlink, but metadata\.yaml must be a regular file/);
  assert.throws(() => checkMembers([f("other"), hard("./metadata.yaml", "other")]), /metadata\.yaml must be a regular file|hard link/);
  assert.throws(() => checkMembers([sym("templates", "/etc")]), /"templates" is a symlink, but templates must be a directory/);
  assert.throws(() => checkMembers([sym("./rootfs", "/")]), /"\.\/rootfs" is a symlink, but rootfs must be a directory/);
  assert.throws(() => checkMembers([sym("rootfs.img", "/dev/sda")]), /rootfs\.img must be a regular file/);
  // In a rootfs archive those names are ordinary.
  checkMembers([sym("templates", "/etc"), sym("metadata.yaml", "/etc/shadow"), sym("rootfs", "/")], "rootfs tarball", "rootfs");
});

test("member names are normalised", () => {
  assert.equal(normalizeMember("./rootfs//bin/./sh"), "rootfs/bin/sh");
  assert.equal(normalizeMember("/x"), undefined);
  assert.equal(normalizeMember("a/../b"), null);
});

/** A ustar header block for `name`. */
function header(name: string, type: string, size = 0, linkname = ""): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, "utf8");
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(size.toString(8).padStart(11, "0") + "\0", 124);
  h.write("00000000000\0", 136);
  h.write(type, 156);
  h.write(linkname, 157);
  h.write("ustar\0", 257);
  h.write("00", 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return h;
}

async function* chunks(b: Buffer, size = 100): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

test("the tar reader lists members, captures files and spots truncation and corruption", async () => {
  const data = Buffer.from("architecture: x86_64\n");
  const archive = Buffer.concat([
    header("metadata.yaml", "0", data.length),
    Buffer.concat([data, Buffer.alloc(512 - data.length)]),
    header("rootfs/bin/sh", "2", 0, "busybox"),
    Buffer.alloc(1024),
  ]);
  const listing = await readTar(chunks(archive), { capture: ["metadata.yaml"] });
  assert.deepEqual(
    listing.members.map((m) => [m.name, m.type, m.linkname]),
    [
      ["metadata.yaml", "file", ""],
      ["rootfs/bin/sh", "symlink", "busybox"],
    ],
  );
  assert.equal(listing.captured.get("metadata.yaml")?.toString(), data.toString());

  await assert.rejects(readTar(chunks(archive.subarray(0, 700))), /truncated or corrupt/);
  await assert.rejects(readTar(chunks(archive.subarray(0, 1536))), /truncated or corrupt/, "no end-of-archive block");
  const bad = Buffer.from(archive);
  bad[5] = 0x41;
  await assert.rejects(readTar(chunks(bad)), /bad header checksum at entry 1/);
  // GNU long names ("L" entries) are applied to the next member.
  const long = "rootfs/" + "d/".repeat(80) + "file";
  const longName = Buffer.from(long + "\0");
  const gnu = Buffer.concat([
    header("././@LongLink", "L", longName.length),
    Buffer.concat([longName, Buffer.alloc(512 - (longName.length % 512))]),
    header(long.slice(0, 99), "0", 0),
    Buffer.alloc(1024),
  ]);
  assert.equal((await readTar(chunks(gnu))).members[0]!.name, long);
});
