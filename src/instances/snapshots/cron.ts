/**
 * `snapshots.schedule` as LXD reads it: a five-field cron expression (minute hour day-of-month
 * month day-of-week, with *, lists, ranges and steps), or a comma-separated list of aliases
 * (@hourly, @daily, @midnight, @weekly, @monthly, @annually, @yearly), or empty. Times are
 * matched in UTC to the minute.
 */

const ALIASES: Record<string, string> = {
  "@hourly": "0 * * * *",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@weekly": "0 0 * * 0",
  "@monthly": "0 0 1 * *",
  "@annually": "0 0 1 1 *",
  "@yearly": "0 0 1 1 *",
};

const FIELDS: [min: number, max: number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

type Field = Set<number>;
export type Schedule = Field[][];

/** Parses a schedule; throws with a message naming the fault. */
export function parseSchedule(expr: string): Schedule {
  const s = expr.trim();
  if (!s) return [];
  const specs = s.startsWith("@") ? s.split(",").map((a) => {
    const e = ALIASES[a.trim()];
    if (!e) throw new Error(`unknown schedule alias "${a.trim()}"`);
    return e;
  }) : s.split(/\s*,\s*(?=\S+\s+\S+\s+\S+\s+\S+\s+\S+)/);
  return specs.map(parseCron);
}

function parseCron(expr: string): Field[] {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`"${expr}" is not a cron expression (minute hour day month weekday)`);
  return parts.map((p, i) => parseField(p, FIELDS[i]![0], FIELDS[i]![1]));
}

function parseField(p: string, min: number, max: number): Field {
  const out = new Set<number>();
  for (const item of p.split(",")) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(item);
    if (!m) throw new Error(`invalid cron field "${p}"`);
    const lo = m[1] === "*" ? min : Number(m[2]);
    const hi = m[1] === "*" ? max : m[3] !== undefined ? Number(m[3]) : m[4] ? max : lo;
    const step = m[4] ? Number(m[4]) : 1;
    if (lo < min || hi > max || lo > hi || step < 1) throw new Error(`cron field "${p}" is out of range ${min}-${max}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Whether the schedule fires in the minute of `t` (UTC). */
export function due(schedule: Schedule, t: Date): boolean {
  return schedule.some(([min, hour, dom, mon, dow]) => {
    const wd = t.getUTCDay();
    return (
      min!.has(t.getUTCMinutes()) &&
      hour!.has(t.getUTCHours()) &&
      dom!.has(t.getUTCDate()) &&
      mon!.has(t.getUTCMonth() + 1) &&
      (dow!.has(wd) || (wd === 0 && dow!.has(7)))
    );
  });
}
