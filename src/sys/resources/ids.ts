/**
 * The pci.ids and usb.ids name databases (hwdata / pciutils / usbutils), parsed once and kept
 * in memory: a lookup per request costs nothing, and the file is read again only when its
 * modification time changes (a package upgrade).
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { readSmallSync } from "../small-file.js";

export interface IdsVendor {
  name: string;
  products: Map<string, string>;
}

export interface IdsClass {
  name: string;
  subclasses: Map<string, string>;
}

export interface IdsDatabase {
  /** Keyed by lower-case hex id ("8086"). */
  vendors: Map<string, IdsVendor>;
  /** Device classes (the "C xx" section), keyed by lower-case hex id ("03"). */
  classes: Map<string, IdsClass>;
}

export const PCI_IDS = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];
export const USB_IDS = ["/usr/share/misc/usb.ids", "/var/lib/usbutils/usb.ids", "/usr/share/hwdata/usb.ids"];

const EMPTY: IdsDatabase = { vendors: new Map(), classes: new Map() };
const cache = new Map<string, { mtimeMs: number; db: IdsDatabase }>();

/** The first of `candidates` present under `root`, parsed; an empty database when none is. */
export function idsDatabase(root: string, candidates: readonly string[]): IdsDatabase {
  for (const c of candidates) {
    const file = join(root, c);
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch {
      continue;
    }
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === mtimeMs) return hit.db;
    const content = readSmallSync(file);
    if (content === undefined) continue;
    const db = parseIds(content);
    cache.set(file, { mtimeMs, db });
    return db;
  }
  return EMPTY;
}

/**
 * Parses the ids format: "vvvv  Vendor" at column 0, "\tdddd  Device" below it, "\t\t..."
 * subsystems (ignored); "C cc  Class" with "\tss  Subclass" below it; other sections
 * (usb.ids' AT, HID, L…) are skipped.
 */
export function parseIds(content: string): IdsDatabase {
  const db: IdsDatabase = { vendors: new Map(), classes: new Map() };
  let vendor: IdsVendor | undefined;
  let cls: IdsClass | undefined;
  for (const line of content.split("\n")) {
    if (line === "" || line[0] === "#") continue;
    if (line[0] !== "\t") {
      vendor = undefined;
      cls = undefined;
      let m = /^([0-9a-fA-F]{4})\s+(.*)$/.exec(line);
      if (m) {
        vendor = { name: m[2]!.trim(), products: new Map() };
        db.vendors.set(m[1]!.toLowerCase(), vendor);
        continue;
      }
      m = /^C ([0-9a-fA-F]{2})\s+(.*)$/.exec(line);
      if (m) {
        cls = { name: m[2]!.trim(), subclasses: new Map() };
        db.classes.set(m[1]!.toLowerCase(), cls);
      }
      continue;
    }
    if (line[1] === "\t") continue;
    const m = /^\t([0-9a-fA-F]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    if (vendor) vendor.products.set(m[1]!.toLowerCase(), m[2]!.trim());
    else if (cls) cls.subclasses.set(m[1]!.toLowerCase(), m[2]!.trim());
  }
  return db;
}

/** Vendor and product names for a pair of ids; undefined where unknown. */
export function idNames(db: IdsDatabase, vendorId: string | undefined, productId: string | undefined): { vendor?: string; product?: string } {
  const v = vendorId ? db.vendors.get(vendorId.toLowerCase()) : undefined;
  if (!v) return {};
  return { vendor: v.name, product: productId ? v.products.get(productId.toLowerCase()) : undefined };
}
