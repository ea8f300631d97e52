/**
 * The words instance verbs take, parsed as lxc parses them: `NAME/PATH` file references,
 * `k=v` lists (and lxc's `k v` form), `-d dev,k=v` device overrides, `--env K=V`, and the
 * random `adjective-noun` name `launch` picks when none is given. Pure: no I/O, unit-tested.
 */
import { UsageError } from "./exit.js";

/** An instance name by LXD's rules: letters, digits and "-", not starting with a digit or "-". */
const INSTANCE_NAME = /^[a-zA-Z][a-zA-Z0-9-]{0,62}$/;

/** A file inside an instance: `NAME/PATH`, PATH absolute inside the instance. */
export interface InstancePath {
  instance: string;
  path: string;
}

/**
 * Splits `NAME/PATH` at the first "/" (as `lxc file` does): `c1/etc/hosts` → c1, /etc/hosts.
 * `c1/` is the instance's root. A word without "/" or with an empty name is a usage error.
 */
export function parseInstancePath(text: string): InstancePath {
  const slash = text.indexOf("/");
  if (slash <= 0) throw new UsageError(`Invalid instance path "${text}": expected NAME/PATH, e.g. c1/etc/hosts`);
  const instance = text.slice(0, slash);
  checkInstanceName(instance, text);
  return { instance, path: normalizePath("/" + text.slice(slash + 1)) };
}

/** Is this word an instance path (NAME/PATH) rather than a local file? Used to tell push from pull. */
export function isInstancePath(text: string): boolean {
  const slash = text.indexOf("/");
  return slash > 0 && INSTANCE_NAME.test(text.slice(0, slash));
}

/** Collapses "//" and "/./", resolves "..", keeps a leading "/"; "/" stays "/". */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

export function checkInstanceName(name: string, context = name): void {
  if (!INSTANCE_NAME.test(name))
    throw new UsageError(`Invalid instance name "${name}" in "${context}": use letters, digits and "-", starting with a letter`);
}

/** `k=v` words into a map; the value may contain "=" and be empty. Repeated keys: the last wins. */
export function parseKeyValues(words: readonly string[], what = "setting"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq <= 0) throw new UsageError(`Invalid ${what} "${w}": expected KEY=VALUE`);
    out[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return out;
}

/**
 * `config set` arguments after the instance: `k=v [k=v…]`, or lxc's older `k v` (exactly two
 * words, the first without "=").
 */
export function parseSetArgs(words: readonly string[]): Record<string, string> {
  if (words.length === 0) throw new UsageError("Nothing to set: give KEY=VALUE pairs (or KEY VALUE)");
  if (words.length === 2 && !words[0]!.includes("=")) return { [words[0]!]: words[1]! };
  return parseKeyValues(words, "setting");
}

/**
 * `--device` / `-d` of launch and init: `DEVICE,key=value[,key=value…]` overrides keys of a
 * device the instance gets from its profiles (lxc: `-d root,size=10GiB`).
 */
export function parseDeviceOverride(text: string): { device: string; settings: Record<string, string> } {
  const [device = "", ...rest] = text.split(",");
  if (!device || device.includes("=")) throw new UsageError(`Invalid device override "${text}": expected DEVICE,key=value[,key=value…]`);
  if (rest.length === 0) throw new UsageError(`Invalid device override "${text}": no key=value after the device name`);
  return { device, settings: parseKeyValues(rest, `device setting in "${text}"`) };
}

/** Folds several `-d` overrides into a devices map (later keys win). */
export function deviceOverrides(texts: readonly string[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const t of texts) {
    const { device, settings } = parseDeviceOverride(t);
    out[device] = { ...out[device], ...settings };
  }
  return out;
}

/** `config device add NAME DEV TYPE k=v…`: the device's map, with its type. */
export function deviceSpec(type: string, words: readonly string[]): Record<string, string> {
  if (!/^[a-z][a-z0-9-]*$/.test(type)) throw new UsageError(`Invalid device type "${type}": e.g. disk, nic, proxy, unix-char, none`);
  const settings = parseKeyValues(words, "device setting");
  if ("type" in settings && settings.type !== type) throw new UsageError(`Device type given twice: "${type}" and type=${settings.type}`);
  return { ...settings, type };
}

/** `--env K=V` words into an environment map. */
export function parseEnv(words: readonly string[]): Record<string, string> {
  return parseKeyValues(words, "environment variable");
}

/** A non-negative integer option (--user, --group, --timeout). */
export function parseId(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`Invalid ${what} "${text}": expected a number`);
  return Number(text);
}

/** A file mode in octal, as `--mode 0644` or `644`. */
export function parseMode(text: string): number {
  if (!/^0?[0-7]{3,4}$/.test(text)) throw new UsageError(`Invalid mode "${text}": expected octal, e.g. 0644`);
  return parseInt(text, 8);
}

// Short words, so names stay easy to type (LXD draws from a similar list).
const ADJECTIVES = [
  "able", "bold", "brave", "calm", "clever", "cosmic", "crisp", "daring", "eager", "fair", "fancy", "fast",
  "gentle", "glad", "grand", "happy", "humble", "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry",
  "modest", "neat", "noble", "polite", "proud", "quick", "quiet", "rapid", "ready", "sharp", "shiny", "smart",
  "snappy", "solid", "steady", "sunny", "swift", "tidy", "upbeat", "vivid", "warm", "wise", "witty", "zesty",
];
const NOUNS = [
  "badger", "beagle", "bison", "cat", "condor", "crane", "deer", "dingo", "dove", "eagle", "falcon", "ferret",
  "finch", "fox", "gecko", "goose", "hare", "hawk", "heron", "ibex", "jackal", "koala", "lark", "lemur",
  "lion", "lynx", "marten", "mole", "moose", "newt", "otter", "owl", "panda", "pigeon", "puma", "quail",
  "raven", "robin", "seal", "shrew", "sloth", "snail", "stork", "swan", "tiger", "toad", "weasel", "wren",
];

/** A random `adjective-noun` instance name, as lxc launch picks when none is given. */
export function randomName(random: () => number = Math.random): string {
  const pick = (list: string[]) => list[Math.floor(random() * list.length) % list.length]!;
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}`;
}
