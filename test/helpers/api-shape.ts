import { readFile } from "node:fs/promises";
import { parse } from "yaml";

/** LXD 5.0.2's API reference (swagger 2), the shapes clients are written against. */
export const REFERENCE = "/work/shared/reference/lxd-rest-api-5.0.2.yaml";

interface Schema {
  type?: string;
  $ref?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

/**
 * Fields Go leaves out when empty (`omitempty`), which the reference does not mark: absent is
 * right for them: InstancePut's restore (a request field), Image's update_source (local images).
 */
const OMITTED_WHEN_EMPTY = new Set(["Instance.restore", "InstanceFull.restore", "Image.update_source"]);

/**
 * The same, for fields inside nested definitions, named "Definition.field": LXD 5.0.2's
 * `json:",omitempty"` tags in shared/api/resource.go (a socket without cpufreq has no
 * frequency; a card without SR-IOV no sriov…).
 */
const OMITEMPTY_FIELDS = new Set([
  ...["name", "vendor", "cache", "frequency", "frequency_minimum", "frequency_turbo"].map((f) => `ResourcesCPUSocket.${f}`),
  "ResourcesCPUCore.frequency",
  "ResourcesMemory.nodes",
  ...["driver", "driver_version", "drm", "sriov", "nvidia", "mdev", "pci_address", "vendor", "vendor_id", "product", "product_id", "usb_address"].map(
    (f) => `ResourcesGPUCard.${f}`,
  ),
  ...["control_name", "control_device", "render_name", "render_device"].map((f) => `ResourcesGPUCardDRM.${f}`),
  ...["cuda_version", "nvrm_version", "uuid", "architecture"].map((f) => `ResourcesGPUCardNvidia.${f}`),
  ...["name", "description"].map((f) => `ResourcesGPUCardMdev.${f}`),
  ...["driver", "driver_version", "ports", "sriov", "pci_address", "vendor", "vendor_id", "product", "product_id", "firmware_version", "usb_address"].map(
    (f) => `ResourcesNetworkCard.${f}`,
  ),
  ...["address", "supported_modes", "supported_ports", "port_type", "transceiver_type", "link_speed", "link_duplex", "infiniband"].map(
    (f) => `ResourcesNetworkCardPort.${f}`,
  ),
  ...["issm_name", "issm_device", "mad_name", "mad_device", "verb_name", "verb_device"].map((f) => `ResourcesNetworkCardPortInfiniband.${f}`),
  ...["model", "type", "wwn", "device_path", "firmware_version", "serial", "pci_address", "usb_address"].map((f) => `ResourcesStorageDisk.${f}`),
  ...["product_name", "entries"].map((f) => `ResourcesPCIVPD.${f}`),
]);

let defs: Promise<Record<string, Schema>> | undefined;
const definitions = () => (defs ??= readFile(REFERENCE, "utf8").then((t) => (parse(t) as { definitions: Record<string, Schema> }).definitions));

/**
 * Where `value` differs from the reference definition `name`: a field missing or extra, or of
 * the wrong JSON type. Go serialises a nil map or slice as null, so null is accepted where the
 * reference has an object or array; never for a string, number or boolean.
 */
export async function shapeProblems(name: string, value: unknown): Promise<string[]> {
  const d = await definitions();
  const problems: string[] = [];
  const check = (schema: Schema, v: unknown, path: string, depth: number) => {
    let def = "";
    if (schema.$ref) {
      def = schema.$ref.replace("#/definitions/", "");
      schema = d[def] ?? {};
    }
    const t = schema.type ?? (schema.properties ? "object" : undefined);
    if (!t) return;
    if (v === null || v === undefined) {
      if (v === undefined) {
        if (!OMITTED_WHEN_EMPTY.has(path)) problems.push(`${path}: missing`);
      } else if (t !== "object" && t !== "array") problems.push(`${path}: null where the reference has ${t}`);
      return;
    }
    const actual = Array.isArray(v) ? "array" : typeof v;
    const ok = t === "integer" ? Number.isInteger(v) : t === "number" ? typeof v === "number" : actual === t;
    if (!ok) return void problems.push(`${path}: ${actual} where the reference has ${t}`);
    if (depth > 8) return;
    if (t === "array" && schema.items) (v as unknown[]).forEach((item, i) => check(schema.items!, item, `${path}[${i}]`, depth + 1));
    if (t === "object" && schema.properties) {
      const obj = v as Record<string, unknown>;
      for (const [k, s] of Object.entries(schema.properties)) {
        if (obj[k] === undefined && OMITEMPTY_FIELDS.has(`${def}.${k}`)) continue;
        check(s, obj[k], `${path}.${k}`, depth + 1);
      }
      for (const k of Object.keys(obj)) if (!(k in schema.properties)) problems.push(`${path}.${k}: not in the reference`);
    } else if (t === "object" && typeof schema.additionalProperties === "object") {
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) check(schema.additionalProperties, item, `${path}.${k}`, depth + 1);
    }
  };
  check({ $ref: `#/definitions/${name}` }, value, name, 0);
  return problems;
}
