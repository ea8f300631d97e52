import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { buildImage, DefinitionError, parseDefinition, UnsupportedTargetError } from "../../src/images/builder/index.js";
import { lxdArchitecture } from "../../src/images/builder/architecture.js";
import { parseExpiry } from "../../src/images/builder/definition.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const HOST = lxdArchitecture(os.machine());

/** The problems a definition has (fails the test if it has none). */
function problems(yaml: string): string[] {
  try {
    parseDefinition(yaml);
  } catch (e) {
    assert.ok(e instanceof DefinitionError, `expected a DefinitionError, got ${e}`);
    return e.problems;
  }
  assert.fail("the definition was accepted");
}

function assertProblem(yaml: string, field: string, text?: RegExp): void {
  const ps = problems(yaml);
  const p = ps.find((x) => x.startsWith(`${field}: `));
  assert.ok(p, `no problem names ${field}; got:\n${ps.join("\n")}`);
  if (text) assert.match(p, text);
}

test("a minimal busybox definition gets its defaults", () => {
  const def = parseDefinition("image: {distribution: busybox}\nsource: {type: busybox}\n");
  assert.equal(def.image.architecture, HOST);
  assert.equal(def.image.variant, "default");
  assert.equal(def.image.release, "");
  assert.equal(def.image.expirySeconds, 30 * 86400);
  assert.deepEqual(def.targets, ["container"]);
  assert.deepEqual(def.files, []);
  assert.deepEqual(def.templates, {});
  assert.deepEqual(def.actions, []);
});

test("a debootstrap source defaults to Debian's mirror and main, and takes Debian architecture names", () => {
  const def = parseDefinition("image: {distribution: debian, release: bookworm, architecture: amd64}\nsource: {type: debootstrap}\n");
  assert.equal(def.image.architecture, "x86_64");
  assert.equal(def.source.mirror, "http://deb.debian.org/debian");
  assert.deepEqual(def.source.components, ["main"]);
  assert.deepEqual(def.source.packages, []);
});

test("the example definitions in images/ are valid", async () => {
  for (const f of ["busybox.yaml", "debian-bookworm.yaml"]) {
    const def = parseDefinition(await readFile(path.join(ROOT, "images", f), "utf8"), f);
    assert.ok(def.templates["/etc/hostname"], `${f} templates /etc/hostname`);
    assert.deepEqual(def.templates["/etc/hostname"]!.when, ["create", "copy"]);
    assert.match(def.templates["/etc/hostname"]!.content, /\{\{ container\.name \}\}/);
  }
});

test("unknown fields are errors naming them", () => {
  assertProblem("image: {distribution: a}\nsource: {type: busybox}\ncolour: red\n", "colour", /unknown field/);
  assertProblem("image: {distribution: a, codename: x}\nsource: {type: busybox}\n", "image.codename", /unknown field/);
  assertProblem("image: {distribution: a}\nsource: {type: busybox}\nfiles: [{path: /a, content: b, owner: root}]\n", "files[0].owner");
});

test("missing required fields are named", () => {
  assertProblem("source: {type: busybox}\n", "image", /required/);
  assertProblem("image: {release: x}\nsource: {type: busybox}\n", "image.distribution", /required/);
  assertProblem("image: {distribution: a}\nsource: {}\n", "source.type", /required/);
  assertProblem("image: {distribution: debian}\nsource: {type: debootstrap}\n", "source.suite", /required for debootstrap/);
});

test("bad values name their field and say what is allowed", () => {
  assertProblem("image: {distribution: a}\nsource: {type: rpm}\n", "source.type", /busybox, debootstrap/);
  assertProblem("image: {distribution: a}\nsource: {type: busybox}\ntargets: [container, vm]\n", "targets[1]", /container, virtual-machine/);
  assertProblem("image: {distribution: a}\nsource: {type: busybox}\ntargets: container\n", "targets", /list/);
  assertProblem("image: {distribution: 'de bian'}\nsource: {type: busybox}\n", "image.distribution", /letters, digits/);
  assertProblem("image: {distribution: a, architecture: vax}\nsource: {type: busybox}\n", "image.architecture", /unknown architecture "vax"/);
  assertProblem("image: {distribution: a, expiry: soon}\nsource: {type: busybox}\n", "image.expiry", /duration/);
  assertProblem("image: {distribution: a, release: b}\nsource: {type: debootstrap, mirror: deb.debian.org}\n", "source.mirror", /URL/);
  assertProblem("image: {distribution: a, release: b}\nsource: {type: debootstrap, packages: [Bad Name]}\n", "source.packages[0]");
});

test("a busybox source rejects debootstrap-only fields and foreign architectures", () => {
  assertProblem("image: {distribution: a}\nsource: {type: busybox, packages: [vim]}\n", "source.packages", /debootstrap/);
  const other = HOST === "aarch64" ? "x86_64" : "aarch64";
  assertProblem(`image: {distribution: a, architecture: ${other}}\nsource: {type: busybox}\n`, "image.architecture", /host architecture/);
});

test("file modes must be quoted octal strings, paths absolute", () => {
  const base = "image: {distribution: a}\nsource: {type: busybox}\n";
  assertProblem(`${base}files: [{path: /etc/x, content: y, mode: 0644}]\n`, "files[0].mode", /quoted octal/);
  assertProblem(`${base}files: [{path: etc/x, content: y}]\n`, "files[0].path", /absolute/);
  assertProblem(`${base}files: [{path: /etc/../../x, content: y}]\n`, "files[0].path");
  const def = parseDefinition(`${base}files: [{path: /etc/x, content: y, mode: "0755"}, {path: /etc/z, content: ""}]\n`);
  assert.deepEqual(def.files, [
    { path: "/etc/x", content: "y", mode: 0o755 },
    { path: "/etc/z", content: "", mode: 0o644 },
  ]);
});

test("templates follow LXD's metadata.yaml format, with the template text inline", () => {
  const base = "image: {distribution: a}\nsource: {type: busybox}\n";
  const def = parseDefinition(
    `${base}templates:\n  /etc/hostname: {when: [create, copy], content: "{{ container.name }}\\n", create_only: true, properties: {foo: bar}}\n`,
  );
  assert.deepEqual(def.templates["/etc/hostname"], {
    when: ["create", "copy"],
    content: "{{ container.name }}\n",
    create_only: true,
    properties: { foo: "bar" },
  });
  assertProblem(`${base}templates:\n  /etc/hostname: {when: [create, boot], content: x}\n`, 'templates["/etc/hostname"].when[1]', /create, copy, start/);
  assertProblem(`${base}templates:\n  /etc/hostname: {when: [], content: x}\n`, 'templates["/etc/hostname"].when', /at least one/);
  assertProblem(`${base}templates:\n  /etc/hostname: {when: [create]}\n`, 'templates["/etc/hostname"].content', /required/);
  assertProblem(`${base}templates:\n  etc/hostname: {when: [create], content: x}\n`, 'templates["etc/hostname"]', /absolute/);
  assertProblem(`${base}templates:\n  /etc/h: {when: [create], content: x, template: ../x}\n`, 'templates["/etc/h"].template', /plain file name/);
  assertProblem(`${base}templates:\n  /etc/h: {when: [create], content: x, create_only: "yes"}\n`, 'templates["/etc/h"].create_only');
});

test("actions need a known trigger and a command", () => {
  const base = "image: {distribution: a}\nsource: {type: busybox}\n";
  assertProblem(`${base}actions: [{trigger: post-files, command: "true"}]\n`, "actions[0].trigger", /post-unpack, post-packages/);
  assertProblem(`${base}actions: [{trigger: post-unpack}]\n`, "actions[0].command", /required/);
  const def = parseDefinition(`${base}actions: [{trigger: post-unpack, command: "echo hi"}]\n`);
  assert.deepEqual(def.actions, [{ trigger: "post-unpack", command: "echo hi" }]);
});

test("every problem is reported at once, and the error message lists them", () => {
  const yaml = "image: {distribution: a, variant: 'x y'}\nsource: {type: rpm}\ntargets: [tv]\n";
  const ps = problems(yaml);
  for (const f of ["image.variant", "source.type", "targets[0]"]) assert.ok(ps.some((p) => p.startsWith(`${f}: `)), `${f} in ${ps}`);
  assert.throws(() => parseDefinition(yaml, "x.yaml"), (e: Error) => /^x\.yaml: invalid image definition:\n {2}image\.variant/.test(e.message));
});

test("text that is not YAML, or not a mapping, says so", () => {
  assert.match(problems("image: [unclosed\n")[0]!, /not valid YAML/);
  assertProblem("- a\n- b\n", "(top level)", /mapping/);
});

test("expiry durations", () => {
  assert.equal(parseExpiry("30d"), 30 * 86400);
  assert.equal(parseExpiry("1w 2d 3h 4m 5s"), 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
  assert.equal(parseExpiry("0d"), undefined);
  assert.equal(parseExpiry("3 days"), undefined);
});

test("a virtual-machine target validates, and the builder says it is not yet supported", async () => {
  const def = parseDefinition("image: {distribution: a}\nsource: {type: busybox}\ntargets: [container, virtual-machine]\n");
  assert.deepEqual(def.targets, ["container", "virtual-machine"]);
  await assert.rejects(buildImage(def, { outDir: "/nonexistent/never-created" }), (e: Error) => {
    assert.ok(e instanceof UnsupportedTargetError);
    assert.match(e.message, /^virtual-machine target: not yet supported/);
    return true;
  });
});
