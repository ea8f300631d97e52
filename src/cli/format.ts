/** Output formats accepted by --format (kept apart from output.ts so main.ts stays light). */
export const FORMATS = ["table", "csv", "json", "yaml"] as const;
export type Format = (typeof FORMATS)[number];
