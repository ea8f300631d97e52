import { readFile } from "node:fs/promises";
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
  let text: string;
  try {
    text = await readFile(join(volumeDir, "metadata.yaml"), "utf8");
  } catch {
    return { files: [], skipped: [] };
  }
  const meta = parseImageMetadata(text);
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
