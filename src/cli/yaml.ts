/**
 * The yaml package, loaded on first use so commands that print no YAML never pay for it.
 * yaml is CommonJS for node: Node gives it named exports, esbuild's split chunk only a default.
 */
export async function loadYaml(): Promise<typeof import("yaml")> {
  const mod = await import("yaml");
  return "parse" in mod ? mod : (mod as unknown as { default: typeof mod }).default;
}
