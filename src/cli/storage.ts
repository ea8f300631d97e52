/**
 * `lodge storage …`: list, show, create, get, set, unset, edit, delete and info of storage
 * pools, as lxc 5.0.2 has them; `lodge storage volume …` is in storage-volume.ts. Writes read
 * the pool with its ETag and PUT it back with If-Match; the daemon validates every key, naming
 * the one it refuses.
 */
import { Option, type Command } from "commander";
import type { LodgeClient } from "../client/client.js";
import { readStdinText, runEditorLoop } from "./editor.js";
import { UsageError } from "./exit.js";
import { FORMATS, type Format } from "./format.js";
import { globalsOf } from "./globals.js";
import { parseKeyValues, parseSetArgs } from "./instance-args.js";
import { forEachName } from "./instance-ref.js";
import { ifMatch } from "./network-ref.js";
import { printList, printObject, renderYaml } from "./output.js";
import { POOL_COLUMNS, poolInfo, sortedPools } from "./storage-columns.js";
import { fetchPool, parsePoolPut, poolPut, poolUrl, POOL_WRITABLE, send, updatePool, withStorage } from "./storage-ref.js";
import type { StoragePool, StoragePoolPut, StoragePoolResources, StoragePoolsPost } from "./storage-types.js";
import { registerStorageVolume } from "./storage-volume.js";
import { loadYaml } from "./yaml.js";

const HEADER = `### This is a YAML representation of a storage pool.
### Any line starting with a '#' will be ignored.
###
### Editable: ${POOL_WRITABLE.join(", ")} (name, driver, status, used_by and locations are ignored).
### A pool's source and size are fixed once it exists.
`;

/** lxc's -f on list verbs; the global --format means the same. */
const formatOption = () => new Option("-f, --format <format>", "Output format").choices(FORMATS);

async function editPool(c: LodgeClient, name: string): Promise<void> {
  const { pool, etag } = await fetchPool(c, name);
  const put = async (body: StoragePoolPut) => send(c, "PUT", poolUrl(name), { ...poolPut(pool), ...body }, ifMatch(etag));
  if (!process.stdin.isTTY) return void (await put(await parsePoolPut(await readStdinText())));
  const text = HEADER + (await loadYaml()).stringify(pool, { lineWidth: 0 });
  await runEditorLoop(text, async (t) => put(await parsePoolPut(t)), "storage-pool.yaml");
}

/** The POST /1.0/storage-pools body of `storage create POOL DRIVER [key=value…]`. */
export function createPoolRequest(name: string, driver: string, words: readonly string[], description?: string): StoragePoolsPost {
  if (name === "") throw new UsageError("Missing pool name");
  if (!/^[a-z][a-z0-9-]*$/.test(driver)) throw new UsageError(`Invalid storage driver "${driver}": e.g. dir or btrfs (lodge storage create POOL DRIVER [key=value…])`);
  return { name, driver, description: description ?? "", config: parseKeyValues(words, "storage pool setting") };
}

export function register(program: Command): void {
  const storage = program.command("storage").description("Manage storage pools and volumes: list, show, create, get, set, unset, edit, delete, info, volume");

  storage
    .command("list")
    .alias("ls")
    .description("List storage pools")
    .addOption(formatOption())
    .action(async (opts: { format?: Format }, cmd: Command) => {
      const g = globalsOf(cmd);
      const all = await withStorage(g, (c) => c.get<StoragePool[] | null>("/1.0/storage-pools?recursion=1"));
      await printList(POOL_COLUMNS, sortedPools(all ?? []), opts.format ?? g.format);
    });

  storage
    .command("show")
    .description("Show a storage pool as YAML (json with --format json); --resources shows its space and inodes")
    .argument("<pool>", "Pool name")
    .option("--resources", "Show the resources available to the storage pool")
    .action(async (name: string, opts: { resources?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const shown = await withStorage(g, async (c) => {
        if (opts.resources) return c.get<StoragePoolResources>(poolUrl(name, "/resources"));
        const { pool } = await fetchPool(c, name);
        return { ...pool, used_by: [...(pool.used_by ?? [])].sort() };
      });
      await printObject(shown, g.format === "json" ? "json" : "yaml");
    });

  storage
    .command("create")
    .description("Create a storage pool: lodge storage create POOL DRIVER [key=value…], e.g. lodge storage create fast btrfs size=10GiB")
    .argument("<pool>", "Pool name")
    .argument("<driver>", "Storage driver: dir or btrfs (the server lists its own in lodge info)")
    .argument("[settings...]", "key=value pairs, e.g. source=/srv/pool size=10GiB")
    .option("--description <text>", "Pool description")
    .action(async (name: string, driver: string, words: string[], opts: { description?: string }, cmd: Command) => {
      const body = createPoolRequest(name, driver, words, opts.description);
      await withStorage(globalsOf(cmd), (c) => send(c, "POST", "/1.0/storage-pools", body));
      process.stdout.write(`Storage pool ${name} created\n`);
    });

  storage
    .command("get")
    .description("Print one config key of a storage pool")
    .argument("<pool>", "Pool name")
    .argument("<key>", "Config key")
    .action(async (name: string, key: string, _opts, cmd: Command) => {
      const { pool } = await withStorage(globalsOf(cmd), (c) => fetchPool(c, name));
      process.stdout.write((pool.config?.[key] ?? "") + "\n");
    });

  storage
    .command("set")
    .description("Set config keys: lodge storage set POOL k=v [k=v…] (or POOL k v)")
    .argument("<pool>", "Pool name")
    .argument("<settings...>", "KEY=VALUE pairs, or KEY VALUE")
    .action(async (name: string, words: string[], _opts, cmd: Command) => {
      const settings = parseSetArgs(words);
      await withStorage(globalsOf(cmd), (c) => updatePool(c, name, (put) => Object.assign(put.config, settings)));
    });

  storage
    .command("unset")
    .description("Remove config keys from a storage pool")
    .argument("<pool>", "Pool name")
    .argument("<keys...>", "Config keys")
    .action(async (name: string, keys: string[], _opts, cmd: Command) => {
      await withStorage(globalsOf(cmd), (c) =>
        updatePool(c, name, (put) => {
          for (const k of keys) {
            if (!(k in put.config)) throw new UsageError(`Config key "${k}" is not set on storage pool "${name}"`);
            delete put.config[k];
          }
        }),
      );
    });

  storage
    .command("edit")
    .description("Edit a storage pool as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument("<pool>", "Pool name")
    .action(async (name: string, _opts, cmd: Command) => {
      await withStorage(globalsOf(cmd), (c) => editPool(c, name));
    });

  storage
    .command("delete")
    .alias("rm")
    .description("Delete storage pools (not one in use)")
    .argument("<pools...>", "Pool names")
    .action(async (names: string[], _opts, cmd: Command) => {
      await withStorage(globalsOf(cmd), (c) =>
        forEachName(names, async (n) => {
          await send(c, "DELETE", poolUrl(n));
          process.stdout.write(`Storage pool ${n} deleted\n`);
        }),
      );
    });

  storage
    .command("info")
    .description("Show a storage pool's space (and inodes) and what uses it")
    .argument("<pool>", "Pool name")
    .option("--bytes", "Show the used and free space in bytes")
    .action(async (name: string, opts: { bytes?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const info = await withStorage(g, async (c) => {
        const { pool } = await fetchPool(c, name);
        return poolInfo(pool, await c.get<StoragePoolResources>(poolUrl(name, "/resources")), !!opts.bytes);
      });
      if (g.format === "json") await printObject(info, "json");
      else process.stdout.write(await renderYaml(info));
    });

  registerStorageVolume(storage);
}
