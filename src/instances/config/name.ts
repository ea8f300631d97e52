import { badRequest } from "../../api/errors.js";

/**
 * LXD's rule for instance names: a valid hostname label, because the name becomes the
 * container's hostname. 1 to 63 characters of ASCII letters, digits and "-"; it must not start
 * with a digit or "-", nor end with "-".
 */
export function validateInstanceName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw badRequest("Instance name is required");
  const problem = instanceNameProblem(name);
  if (problem) throw badRequest(`Invalid instance name "${name}": ${problem}`);
  return name;
}

export function instanceNameProblem(name: string): string | undefined {
  if (name.length > 63) return "longer than 63 characters";
  if (!/^[A-Za-z0-9-]+$/.test(name)) return 'only ASCII letters, digits and "-" are allowed';
  if (/^[0-9]/.test(name)) return "must not start with a digit";
  if (name.startsWith("-")) return 'must not start with "-"';
  if (name.endsWith("-")) return 'must not end with "-"';
  return undefined;
}
