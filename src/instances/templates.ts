import { badRequest } from "../api/errors.js";
import { parseImageMetadata, type TemplateTrigger } from "../images/metadata.js";
import { BeneathError, openRegularBeneath, readRegularBeneath, type RegularFile } from "../sys/beneath.js";

export interface TemplateContext {
  trigger: TemplateTrigger;
  name: string;
  type: string;
  architecture: string;
  config: Record<string, string>;
  properties: Record<string, string>;
}

export interface RenderedTemplate {
  path: string;
  content: string;
  mode: number;
}

/**
 * Image files are read as host root from the instance volume, where an image imported by an
 * older, laxer Lodge may have left links, FIFOs or huge files: each is opened below the volume
 * following no link (beneath.ts), must be a regular file, and is read up to this bound (also
 * what an import accepts for metadata.yaml).
 */
const MAX_IMAGE_FILE_BYTES = 1024 * 1024;

/**
 * Renders the image templates (metadata.yaml "templates") that apply to a trigger. Values are
 * pongo2-style expressions as LXD images use them: `{{ instance.name }}` (or container.*),
 * `{{ trigger }}`, `{{ properties.key }}`, `{{ config_get("user.x", "fallback") }}`.
 * Templates with control blocks (`{% … %}`) are reported as skipped rather than half-rendered.
 */
export async function renderTemplates(
  volumeDir: string,
  ctx: TemplateContext,
): Promise<{ files: RenderedTemplate[]; skipped: string[] }> {
  const meta = await metadataOf(volumeDir);
  if (!meta) return { files: [], skipped: [] };
  const files: RenderedTemplate[] = [];
  const skipped: string[] = [];
  for (const [path, tpl] of Object.entries(meta.templates ?? {})) {
    if (!tpl.when.includes(ctx.trigger)) continue;
    if (tpl.create_only && ctx.trigger !== "create") continue;
    const source = await readTemplate(volumeDir, tpl.template, path);
    if (/\{%/.test(source)) {
      skipped.push(path);
      continue;
    }
    files.push({ path, content: render(source, ctx, tpl.properties ?? {}), mode: 0o644 });
  }
  return { files, skipped };
}

/** templates/<name>: the name comes from the image, so the kernel keeps it below templates/. */
async function readTemplate(volumeDir: string, name: string, target: string): Promise<string> {
  try {
    return (await readRegularBeneath(volumeDir, `templates/${name}`, MAX_IMAGE_FILE_BYTES)).toString("utf8");
  } catch (e) {
    if (!(e instanceof BeneathError)) throw e;
    throw badRequest(`Cannot apply image template "${name}" to "${target}": templates/${name} ${e.why}`);
  }
}

type Metadata = ReturnType<typeof parseImageMetadata>;
const parsed = new Map<string, { mtimeMs: number; size: number; ino: number; meta: Metadata }>();

/**
 * An instance's metadata.yaml, parsed once while it is unchanged (every start looks at its
 * templates; parsing YAML each time is most of that). Undefined when there is none.
 */
async function metadataOf(volumeDir: string): Promise<Metadata | undefined> {
  let f: RegularFile;
  try {
    f = await openRegularBeneath(volumeDir, "metadata.yaml", MAX_IMAGE_FILE_BYTES);
  } catch (e) {
    if (!(e instanceof BeneathError)) throw e;
    if (e.code === "ENOENT") {
      parsed.delete(volumeDir);
      return undefined;
    }
    throw badRequest(`Cannot read the instance's image metadata: metadata.yaml ${e.why}`);
  }
  try {
    const st = f.stats;
    const known = parsed.get(volumeDir);
    if (known && known.mtimeMs === st.mtimeMs && known.size === st.size && known.ino === st.ino) return known.meta;
    const meta = parseImageMetadata((await f.read()).toString("utf8"));
    if (parsed.size >= 4096) parsed.clear(); // (entries of deleted instances go this way)
    parsed.set(volumeDir, { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino, meta });
    return meta;
  } catch (e) {
    if (e instanceof BeneathError) throw badRequest(`Cannot read the instance's image metadata: metadata.yaml ${e.why}`);
    throw e;
  } finally {
    await f.close();
  }
}

export function render(source: string, ctx: TemplateContext, tplProps: Record<string, string>): string {
  const properties = { ...ctx.properties, ...tplProps };
  const instance = { name: ctx.name, type: ctx.type, architecture: ctx.architecture };
  return source.replace(/\{\{\s*(.+?)\s*\}\}/g, (_, expr: string) => {
    const call = /^config_get\(\s*"([^"]+)"\s*(?:,\s*"([^"]*)"\s*)?\)$/.exec(expr);
    if (call) return ctx.config[call[1]!] ?? call[2] ?? "";
    if (expr === "trigger") return ctx.trigger;
    const [root, key] = expr.split(".", 2);
    if ((root === "instance" || root === "container") && key) return String(instance[key as keyof typeof instance] ?? "");
    if (root === "properties" && key) return properties[key] ?? "";
    if (root === "config" && key) return ctx.config[expr.slice("config.".length)] ?? "";
    return "";
  });
}
