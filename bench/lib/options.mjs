// Command-line options of the side-by-side benches: the ones they all take (--runs, --lodge-dir,
// --lxd-socket, --no-lxd, --only, --json, --report) plus each bench's own.
import { resolve as resolvePath } from "node:path";

/**
 * Parses argv. spec: { script, usage (text after "usage: "), parts (for --only), defaults,
 * flags: { "--flag": (o, value, int) => void } } where value() takes the flag's value (inline
 * "--flag=v" or the next argument) and int(text, flag) reads a whole number ≥ 0. Exits with the
 * usage on a bad argument.
 */
export function parseOptions(argv, spec) {
  const usage = (msg) => {
    if (msg) console.error(`${spec.script}: ${msg}`);
    console.error(`usage: ${spec.usage}`);
    process.exit(2);
  };
  const int = (v, name) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) usage(`${name} needs a whole number, got ${v}`);
    return n;
  };
  const o = { runs: 10, lodgeDir: null, lxdSocket: null, noLxd: false, json: false, report: null, only: new Set(spec.parts), ...spec.defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    switch (flag) {
      case "--runs": o.runs = int(value(), flag); break;
      case "--lodge-dir": o.lodgeDir = resolvePath(value()); break;
      case "--lxd-socket": o.lxdSocket = resolvePath(value()); break;
      case "--no-lxd": o.noLxd = true; break;
      case "--json": o.json = true; break;
      case "--report": o.report = resolvePath(value()); break;
      case "--only": {
        o.only = new Set(value().split(",").map((s) => s.trim()).filter(Boolean));
        for (const p of o.only) if (!spec.parts.includes(p)) usage(`unknown part ${p} (one of ${spec.parts.join(", ")})`);
        break;
      }
      case "-h": case "--help": usage(); break;
      default:
        if (!spec.flags?.[flag]) usage(`unknown argument ${a}`);
        spec.flags[flag](o, value, int);
    }
  }
  if (o.runs < 1) usage("--runs must be at least 1");
  return o;
}
