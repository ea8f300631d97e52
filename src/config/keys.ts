import { badRequest } from "../api/errors.js";

/**
 * Config keys keep LXD's names and meanings. A key table says what each key accepts; an unknown
 * key is an error naming it, except under the free-form prefixes (user.*, environment.*).
 */
export interface KeySpec {
  type: "string" | "bool" | "int" | "size" | "duration";
  default?: string;
  /** Extra check on the raw string; throws Error with a user-facing reason. */
  validate?: (value: string) => void;
  /** Never returned in clear nor logged (e.g. trust passwords). */
  secret?: boolean;
  /** The key may be changed while the thing it configures runs (instances). */
  live?: boolean;
  description: string;
}

export type KeyTable = Record<string, KeySpec>;

const BOOL = new Set(["true", "false", "1", "0", "yes", "no", "on", "off"]);

export function parseBool(v: string | undefined): boolean {
  return v !== undefined && ["true", "1", "yes", "on"].includes(v.toLowerCase());
}

/** Checks every key of `config` against `table`; throws a 400 naming the first bad key. */
export function validateConfig(
  table: KeyTable,
  config: Record<string, unknown>,
  freePrefixes: readonly string[],
  what: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, raw] of Object.entries(config)) {
    if (raw === null || raw === undefined) continue;
    if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean")
      throw badRequest(`Invalid value for ${what} config key "${key}": expected a string`);
    const value = String(raw);
    const spec = table[key];
    if (!spec) {
      if (freePrefixes.some((p) => key.startsWith(p)) && key.length > key.indexOf(".") + 1) {
        out[key] = value;
        continue;
      }
      throw badRequest(`Unknown ${what} config key "${key}"`);
    }
    if (value !== "") {
      try {
        checkType(spec, value);
        spec.validate?.(value);
      } catch (e) {
        throw badRequest(`Invalid value for ${what} config key "${key}": ${(e as Error).message}`);
      }
    }
    out[key] = value;
  }
  return out;
}

function checkType(spec: KeySpec, value: string): void {
  switch (spec.type) {
    case "bool":
      if (!BOOL.has(value.toLowerCase())) throw new Error(`"${value}" is not a boolean (use true or false)`);
      return;
    case "int":
      if (!/^-?\d+$/.test(value)) throw new Error(`"${value}" is not an integer`);
      return;
    case "size":
      parseSize(value);
      return;
    case "duration":
      if (!/^\d+(ms|s|m|h|d)?$/.test(value)) throw new Error(`"${value}" is not a duration (e.g. 30s, 5m)`);
      return;
    case "string":
      return;
  }
}

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  kB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  PB: 1e15,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  PiB: 1024 ** 5,
};

/** Parses LXD size strings ("64MiB", "1GB", "512"); returns bytes. */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kMGTP]i?B|B)?$/.exec(value.trim());
  if (!m || UNITS[m[2] ?? ""] === undefined) throw new Error(`"${value}" is not a size (e.g. 512MiB, 2GB)`);
  return Math.floor(Number(m[1]) * UNITS[m[2] ?? ""]!);
}
