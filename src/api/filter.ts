import { badRequest } from "./errors.js";

/**
 * LXD's `filter=` query language, the subset list endpoints need: clauses `<field> eq|ne
 * <value>` joined by `and`/`or` (and binds tighter), each optionally preceded by `not`. A field
 * is a JSON key of the listed object, nested keys joined by dots (`properties.os`); values may be
 * quoted. Matching compares the field's string form, as LXD does.
 */
export interface FilterClause {
  not: boolean;
  field: string;
  op: "eq" | "ne";
  value: string;
  /** How this clause joins the previous one. */
  join: "and" | "or";
}

export function parseFilter(text: string): FilterClause[] {
  const tokens = tokenize(text);
  const clauses: FilterClause[] = [];
  let i = 0;
  while (i < tokens.length) {
    let join: "and" | "or" = "and";
    if (clauses.length > 0) {
      const j = tokens[i++]?.toLowerCase();
      if (j !== "and" && j !== "or") throw badRequest(`Invalid filter: expected "and" or "or" before "${tokens[i - 1] ?? ""}"`);
      join = j;
    }
    let not = false;
    if (tokens[i]?.toLowerCase() === "not") {
      not = true;
      i++;
    }
    const [field, op, value] = [tokens[i], tokens[i + 1]?.toLowerCase(), tokens[i + 2]];
    if (field === undefined || op === undefined || value === undefined)
      throw badRequest(`Invalid filter: incomplete clause in "${text}" (use <field> eq <value>)`);
    if (op !== "eq" && op !== "ne") throw badRequest(`Invalid filter: unsupported operator "${op}" (use eq or ne)`);
    clauses.push({ not, field, op, value, join });
    i += 3;
  }
  return clauses;
}

function tokenize(text: string): string[] {
  const out: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+))/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[0].trim() === "") break;
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? m[3]!));
  }
  return out;
}

/** Evaluates clauses against an object: ORs of ANDs, left to right. */
export function matchFilter(obj: unknown, clauses: readonly FilterClause[]): boolean {
  if (clauses.length === 0) return true;
  let any = false;
  let all = true;
  for (const c of clauses) {
    if (c.join === "or") {
      any ||= all;
      all = true;
    }
    all &&= matchClause(obj, c);
  }
  return any || all;
}

function matchClause(obj: unknown, c: FilterClause): boolean {
  const v = lookup(obj, c.field);
  const s = v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  const eq = s === c.value;
  const hit = c.op === "eq" ? eq : !eq;
  return c.not ? !hit : hit;
}

function lookup(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  // Try the longest key first so dotted property names ("user.foo") still match.
  const parts = path.split(".");
  while (parts.length > 0) {
    if (typeof cur !== "object" || cur === null) return undefined;
    const rec = cur as Record<string, unknown>;
    let found = false;
    for (let n = parts.length; n > 0; n--) {
      const key = parts.slice(0, n).join(".");
      if (key in rec) {
        cur = rec[key];
        parts.splice(0, n);
        found = true;
        break;
      }
    }
    if (!found) return undefined;
  }
  return cur;
}
