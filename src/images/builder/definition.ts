/**
 * The image definition: a small YAML file that says what to build.
 *
 * ```yaml
 * image: {distribution: debian, release: bookworm, variant: default, description: Debian 12}
 * source: {type: debootstrap, suite: bookworm, packages: [less]}
 * targets: [container]
 * files: [{path: /etc/motd, content: "hello\n", mode: "0644"}]
 * templates:
 *   /etc/hostname: {when: [create, copy], content: "{{ container.name }}\n"}
 * actions: [{trigger: post-packages, command: "echo done"}]
 * vm: {size: 2GiB, cmdline: "console=ttyS0 root=/dev/vda"}   # with targets: [virtual-machine]
 * ```
 *
 * parseDefinition() turns YAML text into a checked ImageDefinition with every default filled
 * in, or throws a DefinitionError listing every problem, each naming its field
 * (`source.type: must be one of busybox, debootstrap`).
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { lxdArchitecture } from "./architecture.js";
import { DEFAULT_CMDLINE } from "./vm-boot.js";

export const SOURCE_TYPES = ["busybox", "debootstrap"] as const;
export const TARGETS = ["container", "virtual-machine"] as const;
export const ACTION_TRIGGERS = ["post-unpack", "post-packages"] as const;
/** LXD's template triggers (`rename` is accepted by LXD though its doc lists the other three). */
export const TEMPLATE_TRIGGERS = ["create", "copy", "start", "rename"] as const;

export type SourceType = (typeof SOURCE_TYPES)[number];
export type Target = (typeof TARGETS)[number];
export type ActionTrigger = (typeof ACTION_TRIGGERS)[number];
export type TemplateTrigger = (typeof TEMPLATE_TRIGGERS)[number];

export interface ImageSection {
  distribution: string;
  release: string;
  /** LXD's name (x86_64, aarch64, …); Debian names such as amd64 are translated. */
  architecture: string;
  description: string;
  variant: string;
  /** Seconds from creation until the image expires (from `expiry: 30d`). */
  expirySeconds: number;
}

export interface SourceSection {
  type: SourceType;
  /** Debian suite for debootstrap; defaults to image.release. */
  suite?: string;
  mirror: string;
  components: string[];
  packages: string[];
  /** debootstrap --variant; minbase unless set. */
  variant?: string;
}

export interface FileSpec {
  path: string;
  content: string;
  mode: number;
}

/** One entry of LXD's metadata.yaml `templates` map, with the template text inline. */
export interface TemplateSpec {
  when: TemplateTrigger[];
  content: string;
  /** File name under templates/; derived from the path when not given. */
  template?: string;
  create_only?: boolean;
  properties?: Record<string, string>;
}

export interface ActionSpec {
  trigger: ActionTrigger;
  command: string;
}

/** How a virtual-machine image boots and how big its root disk is. */
export interface VmSection {
  /** The kernel command line of direct boot. */
  cmdline: string;
  /** Least size of the root disk in bytes (it grows to fit the rootfs). */
  sizeBytes: number;
}

export interface ImageDefinition {
  image: ImageSection;
  source: SourceSection;
  targets: Target[];
  files: FileSpec[];
  templates: Record<string, TemplateSpec>;
  actions: ActionSpec[];
  vm: VmSection;
}

export const DEFAULT_MIRROR = "http://deb.debian.org/debian";
const DEFAULT_EXPIRY = "30d";

/** Every problem found in a definition, one `field: message` line each. */
export class DefinitionError extends Error {
  constructor(
    readonly problems: string[],
    source?: string,
  ) {
    super(`${source ? `${source}: ` : ""}invalid image definition:\n  ${problems.join("\n  ")}`);
    this.name = "DefinitionError";
  }
}

/** Reads and checks a definition file. */
export async function loadDefinition(path: string): Promise<ImageDefinition> {
  return parseDefinition(await readFile(path, "utf8"), path);
}

/** Parses YAML text and checks it; `source` names the file in error messages. */
export function parseDefinition(text: string, source?: string): ImageDefinition {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    const msg = e instanceof YAMLParseError ? e.message.split("\n")[0] : String(e);
    throw new DefinitionError([`not valid YAML: ${msg}`], source);
  }
  return validateDefinition(doc, source);
}

/** Checks an already-parsed definition and fills in defaults. */
export function validateDefinition(doc: unknown, source?: string): ImageDefinition {
  const c = new Checker();
  const root = c.object(doc, "", ["image", "source", "targets", "files", "templates", "actions", "vm"], ["image", "source"]);
  const image = checkImage(c, root?.image);
  const src = checkSource(c, root?.source, image);
  const def: ImageDefinition = {
    image,
    source: src,
    targets: checkTargets(c, root?.targets),
    files: checkFiles(c, root?.files),
    templates: checkTemplates(c, root?.templates),
    actions: checkActions(c, root?.actions),
    vm: checkVm(c, root?.vm),
  };
  if (root?.vm !== undefined && !def.targets.includes("virtual-machine")) c.problem("vm", "only applies to targets: [virtual-machine]");
  if (c.problems.length) throw new DefinitionError(c.problems, source);
  return def;
}

function checkImage(c: Checker, v: unknown): ImageSection {
  const o = c.object(v, "image", ["distribution", "release", "architecture", "description", "variant", "expiry"], ["distribution"]);
  const distribution = c.name(o?.distribution, "image.distribution") ?? "";
  const release = c.name(o?.release, "image.release", true) ?? "";
  let architecture = lxdArchitecture(os.machine()) ?? os.machine();
  const archIn = c.string(o?.architecture, "image.architecture", true);
  if (archIn !== undefined) {
    const a = lxdArchitecture(archIn);
    if (a) architecture = a;
    else c.problem("image.architecture", `unknown architecture "${archIn}" (use x86_64, aarch64, i686, armv7l, ppc64le, s390x, riscv64 or their Debian names)`);
  }
  const variant = c.name(o?.variant, "image.variant", true) ?? "default";
  const description =
    c.string(o?.description, "image.description", true) ?? [distribution, release, architecture, `(${variant})`].filter(Boolean).join(" ");
  const expiry = c.string(o?.expiry, "image.expiry", true) ?? DEFAULT_EXPIRY;
  const expirySeconds = parseExpiry(expiry);
  if (expirySeconds === undefined) c.problem("image.expiry", `"${expiry}" is not a duration such as 30d, 12h or 1w 2d`);
  return { distribution, release, architecture, description, variant, expirySeconds: expirySeconds ?? 0 };
}

function checkSource(c: Checker, v: unknown, image: ImageSection): SourceSection {
  const o = c.object(v, "source", ["type", "suite", "mirror", "components", "packages", "variant"], ["type"]);
  const type = c.oneOf(o?.type, "source.type", SOURCE_TYPES) ?? "busybox";
  const src: SourceSection = {
    type,
    suite: c.name(o?.suite, "source.suite", true),
    mirror: c.string(o?.mirror, "source.mirror", true) ?? DEFAULT_MIRROR,
    components: c.stringList(o?.components, "source.components", /^[a-z0-9-]+$/) ?? ["main"],
    packages: c.stringList(o?.packages, "source.packages", /^[a-z0-9][a-z0-9+.-]*$/) ?? [],
    variant: c.oneOf(o?.variant, "source.variant", ["minbase", "buildd", "fakechroot"] as const, true),
  };
  if (!/^(https?|file):\/\/\S+$/.test(src.mirror)) c.problem("source.mirror", `"${src.mirror}" is not an http(s):// or file:// URL`);
  if (type === "busybox") {
    for (const k of ["suite", "mirror", "components", "packages", "variant"] as const) {
      if (o && o[k] !== undefined) c.problem(`source.${k}`, "only applies to a debootstrap source");
    }
    const host = lxdArchitecture(os.machine());
    if (image.architecture !== host) c.problem("image.architecture", `a busybox source builds only for the host architecture (${host})`);
  } else if (!src.suite && !image.release) {
    c.problem("source.suite", "required for debootstrap (or set image.release)");
  }
  return src;
}

function checkTargets(c: Checker, v: unknown): Target[] {
  if (v === undefined) return ["container"];
  const list = c.list(v, "targets");
  if (!list) return ["container"];
  if (list.length === 0) c.problem("targets", "must name at least one of container, virtual-machine");
  const out: Target[] = [];
  list.forEach((t, i) => {
    const x = c.oneOf(t, `targets[${i}]`, TARGETS);
    if (x && out.includes(x)) c.problem(`targets[${i}]`, `"${x}" is listed twice`);
    else if (x) out.push(x);
  });
  return out;
}

function checkFiles(c: Checker, v: unknown): FileSpec[] {
  const list = v === undefined ? [] : (c.list(v, "files") ?? []);
  return list.map((f, i) => {
    const at = `files[${i}]`;
    const o = c.object(f, at, ["path", "content", "mode"], ["path", "content"]);
    const path = c.absolutePath(o?.path, `${at}.path`) ?? "/";
    const content = c.string(o?.content, `${at}.content`, false, true) ?? "";
    let mode = 0o644;
    if (o?.mode !== undefined) {
      if (typeof o.mode === "string" && /^0?[0-7]{3,4}$/.test(o.mode)) mode = parseInt(o.mode, 8);
      else c.problem(`${at}.mode`, `write the mode as a quoted octal string such as "0644" (got ${JSON.stringify(o.mode)})`);
    }
    return { path, content, mode };
  });
}

function checkTemplates(c: Checker, v: unknown): Record<string, TemplateSpec> {
  const o = v === undefined ? {} : (c.object(v, "templates", null, []) ?? {});
  const out: Record<string, TemplateSpec> = {};
  for (const [path, t] of Object.entries(o)) {
    const at = `templates["${path}"]`;
    if (!path.startsWith("/") || path.split("/").includes("..")) c.problem(at, "the key must be an absolute path inside the instance");
    const e = c.object(t, at, ["when", "content", "template", "create_only", "properties"], ["when", "content"]);
    const whenList = c.list(e?.when, `${at}.when`) ?? [];
    if (e?.when !== undefined && whenList.length === 0) c.problem(`${at}.when`, `must list at least one of ${TEMPLATE_TRIGGERS.join(", ")}`);
    const when = whenList.map((w, i) => c.oneOf(w, `${at}.when[${i}]`, TEMPLATE_TRIGGERS)).filter((w): w is TemplateTrigger => !!w);
    const spec: TemplateSpec = { when, content: c.string(e?.content, `${at}.content`, false, true) ?? "" };
    const name = c.string(e?.template, `${at}.template`, true);
    if (name !== undefined) {
      if (/^[A-Za-z0-9._-]+$/.test(name) && name !== "." && name !== "..") spec.template = name;
      else c.problem(`${at}.template`, `"${name}" must be a plain file name (letters, digits, ".", "_", "-")`);
    }
    if (e?.create_only !== undefined) {
      if (typeof e.create_only === "boolean") spec.create_only = e.create_only;
      else c.problem(`${at}.create_only`, "must be true or false");
    }
    if (e?.properties !== undefined) {
      const p = c.object(e.properties, `${at}.properties`, null, []);
      if (p) {
        spec.properties = {};
        for (const [k, pv] of Object.entries(p)) {
          const s = c.string(pv, `${at}.properties.${k}`, false, true);
          if (s !== undefined) spec.properties[k] = s;
        }
      }
    }
    out[path] = spec;
  }
  return out;
}

function checkActions(c: Checker, v: unknown): ActionSpec[] {
  const list = v === undefined ? [] : (c.list(v, "actions") ?? []);
  return list.map((a, i) => {
    const o = c.object(a, `actions[${i}]`, ["trigger", "command"], ["trigger", "command"]);
    return {
      trigger: c.oneOf(o?.trigger, `actions[${i}].trigger`, ACTION_TRIGGERS) ?? "post-unpack",
      command: c.string(o?.command, `actions[${i}].command`) ?? "",
    };
  });
}

function checkVm(c: Checker, v: unknown): VmSection {
  const out: VmSection = { cmdline: DEFAULT_CMDLINE, sizeBytes: 64 * 2 ** 20 };
  if (v === undefined) return out;
  const o = c.object(v, "vm", ["cmdline", "size"], []);
  const cmdline = c.string(o?.cmdline, "vm.cmdline", true);
  if (cmdline !== undefined) out.cmdline = cmdline.trim();
  const size = c.string(o?.size, "vm.size", true);
  if (size !== undefined) {
    const m = /^(\d+)\s*(MiB|GiB|M|G)$/.exec(size.trim());
    if (m) out.sizeBytes = Number(m[1]) * 2 ** (m[2]!.startsWith("G") ? 30 : 20);
    else c.problem("vm.size", `"${size}" is not a size such as 512MiB or 2GiB`);
  }
  return out;
}

/** `30d`, `12h`, `1w 2d 3h`: seconds, or undefined when malformed. */
export function parseExpiry(s: string): number | undefined {
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const parts = s.trim().split(/\s+/);
  let total = 0;
  for (const p of parts) {
    const m = /^(\d+)([smhdw])$/.exec(p);
    if (!m) return undefined;
    total += Number(m[1]) * unit[m[2]!]!;
  }
  return total > 0 ? total : undefined;
}

/** Collects problems instead of stopping at the first, so a user fixes a file in one pass. */
class Checker {
  readonly problems: string[] = [];

  problem(field: string, msg: string): void {
    this.problems.push(`${field || "(top level)"}: ${msg}`);
  }

  /** A mapping with only `allowed` keys (any key when null) and every `required` key. */
  object(v: unknown, field: string, allowed: readonly string[] | null, required: readonly string[]): Record<string, unknown> | undefined {
    if (v === undefined || v === null) {
      this.problem(field, "is required");
      return undefined;
    }
    if (typeof v !== "object" || Array.isArray(v)) {
      this.problem(field, `must be a mapping, not ${describe(v)}`);
      return undefined;
    }
    const o = v as Record<string, unknown>;
    const prefix = field ? `${field}.` : "";
    if (allowed) {
      for (const k of Object.keys(o)) {
        if (!allowed.includes(k)) this.problem(`${prefix}${k}`, `unknown field (known: ${allowed.join(", ")})`);
      }
    }
    for (const k of required) if (o[k] === undefined || o[k] === null) this.problem(`${prefix}${k}`, "is required");
    return o;
  }

  list(v: unknown, field: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      this.problem(field, `must be a list, not ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /** A string; a number or boolean is taken as its text (YAML reads `release: 12` as a number). */
  string(v: unknown, field: string, optional = false, allowEmpty = false): string | undefined {
    if (v === undefined || v === null) {
      if (!optional) this.problem(field, "is required");
      return undefined;
    }
    if (typeof v === "number" || typeof v === "boolean") v = String(v);
    if (typeof v !== "string") {
      this.problem(field, `must be a string, not ${describe(v)}`);
      return undefined;
    }
    if (!allowEmpty && v.trim() === "") {
      this.problem(field, "must not be empty");
      return undefined;
    }
    return v;
  }

  /** A short identifier: letters, digits, ".", "_", "-" (it ends up in file names and properties). */
  name(v: unknown, field: string, optional = false): string | undefined {
    const s = this.string(v, field, optional);
    if (s !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s)) {
      this.problem(field, `"${s}" may hold only letters, digits, ".", "_" and "-"`);
      return undefined;
    }
    return s;
  }

  oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[], optional = false): T | undefined {
    const s = this.string(v, field, optional);
    if (s === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(s)) {
      this.problem(field, `"${s}" must be one of ${allowed.join(", ")}`);
      return undefined;
    }
    return s as T;
  }

  stringList(v: unknown, field: string, pattern: RegExp): string[] | undefined {
    const list = this.list(v, field);
    if (!list) return undefined;
    const out: string[] = [];
    list.forEach((x, i) => {
      const s = this.string(x, `${field}[${i}]`);
      if (s !== undefined && !pattern.test(s)) this.problem(`${field}[${i}]`, `"${s}" is not a valid name`);
      else if (s !== undefined) out.push(s);
    });
    return out;
  }

  absolutePath(v: unknown, field: string): string | undefined {
    const s = this.string(v, field);
    if (s === undefined) return undefined;
    if (!s.startsWith("/") || s.split("/").includes("..") || s.endsWith("/")) {
      this.problem(field, `"${s}" must be an absolute file path without ".." components`);
      return undefined;
    }
    return s;
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  return typeof v === "object" ? "a mapping" : `${typeof v} ${JSON.stringify(v)}`;
}
