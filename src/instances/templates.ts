import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseImageMetadata, type TemplateTrigger } from "../images/metadata.js";

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
 * Renders the image templates (metadata.yaml "templates") that apply to a trigger. Values are
 * pongo2-style expressions as LXD images use them: `{{ instance.name }}` (or container.*),
 * `{{ trigger }}`, `{{ properties.key }}`, `{{ config_get("user.x", "fallback") }}`.
 * Templates with control blocks (`{% … %}`) are reported as skipped rather than half-rendered.
 */
export async function renderTemplates(
  volumeDir: string,
  ctx: TemplateContext,
): Promise<{ files: RenderedTemplate[]; skipped: string[] }> {
  const meta = await metadataOf(join(volumeDir, "metadata.yaml"));
  if (!meta) return { files: [], skipped: [] };
  const files: RenderedTemplate[] = [];
  const skipped: string[] = [];
  for (const [path, tpl] of Object.entries(meta.templates ?? {})) {
    if (!tpl.when.includes(ctx.trigger)) continue;
    if (tpl.create_only && ctx.trigger !== "create") continue;
    const source = await readFile(join(volumeDir, "templates", tpl.template), "utf8");
    if (/\{%/.test(source)) {
      skipped.push(path);
      continue;
    }
    files.push({ path, content: render(source, ctx, tpl.properties ?? {}), mode: 0o644 });
  }
  return { files, skipped };
}

type Metadata = ReturnType<typeof parseImageMetadata>;
const parsed = new Map<string, { mtimeMs: number; size: number; meta: Metadata }>();

/**
 * An instance's metadata.yaml, parsed once while it is unchanged (every start looks at its
 * templates; parsing YAML each time is most of that). Undefined when there is none.
 */
async function metadataOf(file: string): Promise<Metadata | undefined> {
  const st = await stat(file).catch(() => undefined);
  if (!st) {
    parsed.delete(file);
    return undefined;
  }
  const known = parsed.get(file);
  if (known && known.mtimeMs === st.mtimeMs && known.size === st.size) return known.meta;
  const meta = parseImageMetadata(await readFile(file, "utf8"));
  if (parsed.size >= 4096) parsed.clear(); // (entries of deleted instances go this way)
  parsed.set(file, { mtimeMs: st.mtimeMs, size: st.size, meta });
  return meta;
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
