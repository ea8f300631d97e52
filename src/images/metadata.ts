import { parse as parseYaml } from "yaml";
import { badRequest } from "../api/errors.js";

/**
 * An image's metadata.yaml, as LXD defines it (doc/image-handling.md): `architecture` and
 * `creation_date` are mandatory; `expiry_date`, `properties` and `templates` are optional.
 */
export interface ImageMetadata {
  architecture: string;
  /** Unix seconds. */
  creation_date: number;
  /** Unix seconds; 0 when the image never expires. */
  expiry_date: number;
  properties: Record<string, string>;
  templates: Record<string, ImageTemplate>;
}

export interface ImageTemplate {
  when: TemplateTrigger[];
  create_only: boolean;
  template: string;
  properties: Record<string, string>;
}

export const TEMPLATE_TRIGGERS = ["create", "copy", "start", "rename"] as const;
export type TemplateTrigger = (typeof TEMPLATE_TRIGGERS)[number];

/** LXD's architecture names and the aliases it accepts for them (shared/osarch). */
const ARCHITECTURES: Record<string, readonly string[]> = {
  i686: ["i386", "i586", "386", "x86", "generic_32"],
  x86_64: ["amd64", "generic_64"],
  armv6l: ["armel", "arm"],
  armv7l: ["armhf", "armhfp", "armv7a_hardfp", "armv7", "armv7a_vfpv3_hardfp"],
  armv8l: [],
  aarch64: ["arm64", "arm64_generic"],
  ppc: ["powerpc"],
  ppc64: ["powerpc64"],
  ppc64le: ["ppc64el"],
  s390x: [],
  mips: ["mipsel"],
  mips64: ["mips64el"],
  riscv32: [],
  riscv64: [],
};

/** The canonical name of an architecture or alias ("amd64" → "x86_64"), or undefined. */
export function canonicalArchitecture(name: string): string | undefined {
  for (const [canonical, aliases] of Object.entries(ARCHITECTURES))
    if (name === canonical || aliases.includes(name)) return canonical;
  return undefined;
}

/** Parses and validates metadata.yaml; errors name the file and the faulty field. */
export function parseImageMetadata(text: string): ImageMetadata {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw badRequest(`Invalid metadata.yaml: not valid YAML: ${firstLine((e as Error).message)}`);
  }
  if (!isMap(doc)) throw badRequest("Invalid metadata.yaml: expected a mapping at the top level");

  const arch = doc.architecture;
  if (arch === undefined || arch === null || arch === "")
    throw badRequest("Invalid metadata.yaml: missing architecture");
  if (typeof arch !== "string") throw badRequest("Invalid metadata.yaml: architecture must be a string");
  if (!canonicalArchitecture(arch)) throw badRequest(`Invalid metadata.yaml: unknown architecture "${arch}"`);

  const created = doc.creation_date;
  if (created === undefined || created === null || created === 0)
    throw badRequest("Invalid metadata.yaml: missing creation_date");
  const creation = unixSeconds(created, "creation_date");
  const expiry = doc.expiry_date === undefined || doc.expiry_date === null ? 0 : unixSeconds(doc.expiry_date, "expiry_date");

  return {
    architecture: arch,
    creation_date: creation,
    expiry_date: expiry,
    properties: stringMap(doc.properties, "properties"),
    templates: templates(doc.templates),
  };
}

function templates(v: unknown): Record<string, ImageTemplate> {
  if (v === undefined || v === null) return {};
  if (!isMap(v)) throw badRequest("Invalid metadata.yaml: templates must be a mapping of file paths to templates");
  const out: Record<string, ImageTemplate> = {};
  for (const [path, t] of Object.entries(v)) {
    const where = `templates["${path}"]`;
    if (!path.startsWith("/")) throw badRequest(`Invalid metadata.yaml: ${where}: the path must be absolute`);
    if (!isMap(t)) throw badRequest(`Invalid metadata.yaml: ${where} must be a mapping`);
    if (typeof t.template !== "string" || t.template === "")
      throw badRequest(`Invalid metadata.yaml: ${where}.template must name a file in templates/`);
    if (t.template.startsWith("/") || t.template.split("/").includes(".."))
      throw badRequest(`Invalid metadata.yaml: ${where}.template "${t.template}" must stay inside templates/`);
    const when = t.when ?? [];
    if (!Array.isArray(when)) throw badRequest(`Invalid metadata.yaml: ${where}.when must be a list`);
    for (const w of when)
      if (!TEMPLATE_TRIGGERS.includes(w as TemplateTrigger))
        throw badRequest(`Invalid metadata.yaml: ${where}.when: unknown trigger "${String(w)}" (use ${TEMPLATE_TRIGGERS.join(", ")})`);
    if (t.create_only !== undefined && typeof t.create_only !== "boolean")
      throw badRequest(`Invalid metadata.yaml: ${where}.create_only must be true or false`);
    out[path] = {
      when: when as TemplateTrigger[],
      create_only: t.create_only === true,
      template: t.template,
      properties: stringMap(t.properties, `${where}.properties`),
    };
  }
  return out;
}

function unixSeconds(v: unknown, field: string): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
    throw badRequest(`Invalid metadata.yaml: ${field} must be a Unix timestamp in seconds, got ${JSON.stringify(v)}`);
  return n;
}

/** A map of scalars; values become strings, as LXD's YAML decoding into map[string]string does. */
function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isMap(v)) throw badRequest(`Invalid metadata.yaml: ${field} must be a mapping of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (val === null) out[k] = "";
    else if (typeof val === "string" || typeof val === "number" || typeof val === "boolean") out[k] = String(val);
    else throw badRequest(`Invalid metadata.yaml: ${field}.${k} must be a string`);
  }
  return out;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function firstLine(s: string): string {
  return s.split("\n")[0]!;
}
