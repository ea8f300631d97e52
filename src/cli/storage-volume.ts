/**
 * `lodge storage volume …`: list, show, create, get, set, unset, edit, delete, rename, info,
 * snapshot and restore of volumes, with lxc 5.0.2's words (`POOL VOLUME`, `POOL custom/VOLUME`,
 * `POOL VOLUME/SNAPSHOT`); attach|detach (storage-volume-attach.ts) and copy|move
 * (storage-volume-copy.ts) are registered from here.
 */
import { Option, type Command } from "commander";
import { ApiError } from "../api/errors.js";
import type { LodgeClient } from "../client/client.js";
import { readStdinText, runEditorLoop } from "./editor.js";
import { UsageError } from "./exit.js";
import { FORMATS, type Format } from "./format.js";
import { globalsOf } from "./globals.js";
import { parseKeyValues, parseSetArgs } from "./instance-args.js";
import { fetchWithEtag, ifMatch } from "./network-ref.js";
import { printObject, renderList } from "./output.js";
import { DEFAULT_VOLUME_COLUMNS, matchVolume, parseVolumeColumns, parseVolumeFilters, sortedVolumes, volumeInfo, type VolumeRow } from "./storage-columns.js";
import { fetchVolume, parseSnapshotPut, parseVolumeArg, parseVolumePut, send, updateVolume, volumeLabel, volumePut, volumesUrl, volumeUrl, VOLUME_WRITABLE, type VolumeRef, withStorage } from "./storage-ref.js";
import type { StorageVolume, StorageVolumePut, StorageVolumesPost, StorageVolumeSnapshot, StorageVolumeState } from "./storage-types.js";
import { registerVolumeAttach } from "./storage-volume-attach.js";
import { registerVolumeCopy } from "./storage-volume-copy.js";
import { loadYaml } from "./yaml.js";

const HEADER = `### This is a YAML representation of a storage volume.
### Any line starting with a '#' will be ignored.
###
### Editable: ${VOLUME_WRITABLE.join(", ")} (the other fields are ignored).
`;
const SNAPSHOT_HEADER = `### This is a YAML representation of a storage volume snapshot.
### Any line starting with a '#' will be ignored.
###
### Editable: description, expires_at (the other fields are ignored).
`;

const formatOption = () => new Option("-f, --format <format>", "Output format").choices(FORMATS);

/** Go's zero time: what lxc sends as expires_at for --no-expiry. */
const NO_EXPIRY = "0001-01-01T00:00:00Z";

/** The POST …/volumes/custom body of `storage volume create POOL VOLUME [key=value…]`. */
export function createVolumeRequest(v: VolumeRef, words: readonly string[], opts: { type?: string; description?: string }): StorageVolumesPost {
  if (v.snapshot !== undefined) throw new UsageError(`Cannot create "${volumeLabel(v)}": to make a snapshot, use lodge storage volume snapshot ${v.pool} ${v.name} ${v.snapshot}`);
  if (v.type !== "custom") throw new UsageError(`Only custom volumes can be created: ${v.type} volumes come with their ${v.type === "image" ? "image" : "instance"}`);
  const content = opts.type ?? "filesystem";
  if (content !== "filesystem" && content !== "block") throw new UsageError(`Invalid --type "${content}": filesystem or block`);
  return { name: v.name, type: "custom", content_type: content, description: opts.description ?? "", config: parseKeyValues(words, "storage volume setting") };
}

async function editVolume(c: LodgeClient, v: VolumeRef): Promise<void> {
  const url = volumeUrl(v);
  if (v.snapshot !== undefined) {
    const { value, etag } = await fetchWithEtag<StorageVolumeSnapshot>(c, url);
    const put = async (text: string) => send(c, "PUT", url, { description: value.description ?? "", ...(await parseSnapshotPut(text)) }, ifMatch(etag));
    if (!process.stdin.isTTY) return void (await put(await readStdinText()));
    return runEditorLoop(SNAPSHOT_HEADER + (await loadYaml()).stringify(value, { lineWidth: 0 }), put, "storage-volume-snapshot.yaml");
  }
  const { volume, etag } = await fetchVolume(c, v);
  const put = async (body: StorageVolumePut) => send(c, "PUT", url, { ...volumePut(volume), ...body }, ifMatch(etag));
  if (!process.stdin.isTTY) return void (await put(await parseVolumePut(await readStdinText())));
  await runEditorLoop(HEADER + (await loadYaml()).stringify(volume, { lineWidth: 0 }), async (t) => put(await parseVolumePut(t)), "storage-volume.yaml");
}

/** The volume, or the snapshot, the words name. */
async function fetchShown(c: LodgeClient, v: VolumeRef): Promise<StorageVolume | StorageVolumeSnapshot> {
  if (v.snapshot !== undefined) return c.get<StorageVolumeSnapshot>(volumeUrl(v));
  const { volume } = await fetchVolume(c, v);
  return { ...volume, used_by: [...(volume.used_by ?? [])].sort() };
}

/**
 * A volume's state, or undefined where the server cannot tell (LXD's dir driver answers "Not
 * supported" on a filesystem without project quotas): the usage is then left out, where lxc
 * fails the whole command.
 */
async function volumeState(c: LodgeClient, v: VolumeRef): Promise<StorageVolumeState | undefined> {
  try {
    return await c.get<StorageVolumeState>(volumeUrl(v, "/state"));
  } catch (e) {
    if (e instanceof ApiError && e.status !== 404 && e.name !== "ConnectionError") return undefined;
    throw e;
  }
}

async function listRows(c: LodgeClient, pool: string, filters: [string, string][], needsState: boolean): Promise<VolumeRow[]> {
  const all = (await c.get<StorageVolume[] | null>(`${volumesUrl(pool)}?recursion=1`)) ?? [];
  const rows: VolumeRow[] = all.filter((v) => matchVolume(v, filters)).map((volume) => ({ volume }));
  if (needsState) {
    // As lxc: only volumes that have a state (not snapshots, not images) are asked for one.
    await Promise.all(
      rows
        .filter((r) => !r.volume.name.includes("/") && r.volume.type !== "image")
        .map(async (r) => {
          r.state = await volumeState(c, { pool, type: r.volume.type, name: r.volume.name });
        }),
    );
  }
  return sortedVolumes(rows);
}

export function registerStorageVolume(storage: Command): void {
  const volume = storage
    .command("volume")
    .description('Manage storage volumes (custom ones unless a type prefix says otherwise: container/NAME, virtual-machine/NAME, image/FINGERPRINT)');

  volume
    .command("list")
    .alias("ls")
    .description("List a pool's volumes and their snapshots; filters are KEY=VALUE on their fields (type=custom, config.size=1GiB)")
    .argument("<pool>", "Pool name")
    .argument("[filters...]", "KEY=VALUE filters")
    .option("-c, --columns <columns>", "Columns: t type, n name, d description, c content type, u used by, U usage", DEFAULT_VOLUME_COLUMNS)
    .addOption(formatOption())
    .action(async (pool: string, words: string[], opts: { columns: string; format?: Format }, cmd: Command) => {
      const g = globalsOf(cmd);
      const format = opts.format ?? g.format;
      const { columns, needsState } = parseVolumeColumns(opts.columns);
      const filters = parseVolumeFilters(words);
      const rows = await withStorage(g, (c) => listRows(c, pool, filters, needsState && (format === "table" || format === "csv")));
      // json and yaml are the volumes themselves, as lxc prints them.
      if (format === "json" || format === "yaml") return void (await printObject(rows.map((r) => r.volume), format));
      process.stdout.write(await renderList(columns, rows, format));
    });

  volume
    .command("show")
    .description("Show a volume or a volume snapshot as YAML (json with --format json)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "VOLUME, VOLUME/SNAPSHOT or TYPE/VOLUME (e.g. container/c1)")
    .action(async (pool: string, word: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const shown = await withStorage(g, (c) => fetchShown(c, parseVolumeArg(pool, word)));
      await printObject(shown, g.format === "json" ? "json" : "yaml");
    });

  volume
    .command("create")
    .description("Create a custom volume: lodge storage volume create POOL VOLUME [key=value…] (--type block for VMs)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("[settings...]", "key=value pairs, e.g. size=1GiB")
    .option("--type <type>", "Content type, block or filesystem", "filesystem")
    .option("--description <text>", "Volume description")
    .action(async (pool: string, word: string, words: string[], opts: { type?: string; description?: string }, cmd: Command) => {
      const v = parseVolumeArg(pool, word);
      const body = createVolumeRequest(v, words, opts);
      await withStorage(globalsOf(cmd), (c) => send(c, "POST", volumesUrl(pool, "custom"), body));
      process.stdout.write(`Storage volume ${word} created\n`);
    });

  volume
    .command("get")
    .description("Print one config key of a volume or a volume snapshot")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "VOLUME or VOLUME/SNAPSHOT")
    .argument("<key>", "Config key")
    .action(async (pool: string, word: string, key: string, _opts, cmd: Command) => {
      const shown = await withStorage(globalsOf(cmd), (c) => fetchShown(c, parseVolumeArg(pool, word)));
      process.stdout.write((shown.config?.[key] ?? "") + "\n");
    });

  const readOnlySnapshot = (v: VolumeRef) => {
    if (v.snapshot !== undefined) throw new UsageError("Snapshots are read-only and can't have their configuration changed");
    return v;
  };

  volume
    .command("set")
    .description("Set config keys: lodge storage volume set POOL VOLUME k=v [k=v…] (or POOL VOLUME k v)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<settings...>", "KEY=VALUE pairs, or KEY VALUE")
    .action(async (pool: string, word: string, words: string[], _opts, cmd: Command) => {
      const v = readOnlySnapshot(parseVolumeArg(pool, word));
      const settings = parseSetArgs(words);
      await withStorage(globalsOf(cmd), (c) => updateVolume(c, v, (put) => Object.assign(put.config, settings)));
    });

  volume
    .command("unset")
    .description("Remove config keys from a volume")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<keys...>", "Config keys")
    .action(async (pool: string, word: string, keys: string[], _opts, cmd: Command) => {
      const v = readOnlySnapshot(parseVolumeArg(pool, word));
      await withStorage(globalsOf(cmd), (c) =>
        updateVolume(c, v, (put) => {
          for (const k of keys) {
            if (!(k in put.config)) throw new UsageError(`Config key "${k}" is not set on storage volume "${volumeLabel(v)}"`);
            delete put.config[k];
          }
        }),
      );
    });

  volume
    .command("edit")
    .description("Edit a volume or a volume snapshot as YAML ($EDITOR, or stdin when it is not a terminal)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "VOLUME or VOLUME/SNAPSHOT")
    .action(async (pool: string, word: string, _opts, cmd: Command) => {
      await withStorage(globalsOf(cmd), (c) => editVolume(c, parseVolumeArg(pool, word)));
    });

  volume
    .command("delete")
    .alias("rm")
    .description("Delete a volume (not one attached to an instance or profile) or a volume snapshot")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "VOLUME or VOLUME/SNAPSHOT")
    .action(async (pool: string, word: string, _opts, cmd: Command) => {
      const v = parseVolumeArg(pool, word);
      await withStorage(globalsOf(cmd), (c) => send(c, "DELETE", volumeUrl(v)));
      process.stdout.write(`Storage volume ${word} deleted\n`);
    });

  volume
    .command("rename")
    .description("Rename a volume (POOL OLD NEW) or a volume snapshot (POOL VOLUME/OLD VOLUME/NEW)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "VOLUME or VOLUME/SNAPSHOT")
    .argument("<new-name>", "NEW or VOLUME/NEW")
    .action(async (pool: string, word: string, target: string, _opts, cmd: Command) => {
      const v = parseVolumeArg(pool, word);
      let newName = target;
      if (v.snapshot !== undefined) {
        const to = parseVolumeArg(pool, target.includes("/") ? target : `${v.name}/${target}`);
        if (to.name !== v.name) throw new UsageError("Invalid new snapshot name, parent volume must be the same as source");
        newName = to.snapshot!;
      } else if (target.includes("/")) throw new UsageError(`Invalid new volume name "${target}": a volume moves to another pool with lodge storage volume move`);
      await withStorage(globalsOf(cmd), (c) => send(c, "POST", volumeUrl(v), { name: newName }));
      const renamed = v.snapshot === undefined ? { ...v, name: newName } : { ...v, snapshot: newName };
      process.stdout.write(`Renamed storage volume from "${volumeLabel(v)}" to "${volumeLabel(renamed)}"\n`);
    });

  volume
    .command("info")
    .description("Show a volume's type, usage and snapshots (the state as --format json|yaml)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "VOLUME or TYPE/VOLUME")
    .action(async (pool: string, word: string, _opts, cmd: Command) => {
      const g = globalsOf(cmd);
      const v = parseVolumeArg(pool, word);
      if (v.snapshot !== undefined || v.type === "image") throw new UsageError("Only instance or custom volumes are supported");
      await withStorage(g, async (c) => {
        const { volume: vol } = await fetchVolume(c, v);
        const state = await volumeState(c, v);
        if (g.format === "json" || g.format === "yaml") return printObject(state ?? { usage: null }, g.format);
        const snapshots = (await c.get<StorageVolumeSnapshot[] | null>(`${volumeUrl(v, "/snapshots")}?recursion=1`)) ?? [];
        process.stdout.write(volumeInfo(vol, state, snapshots));
      });
    });

  volume
    .command("snapshot")
    .description("Snapshot a custom volume (the server names the snapshot when no name is given)")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("[snapshot]", "Snapshot name")
    .option("--no-expiry", "Ignore any configured auto-expiry for the storage volume")
    .option("--reuse", "If the snapshot name already exists, delete and create a new one")
    .action(async (pool: string, word: string, snap: string | undefined, opts: { expiry: boolean; reuse?: boolean }, cmd: Command) => {
      const v = parseVolumeArg(pool, word, { snapshots: false });
      if (v.type !== "custom") throw new UsageError('Only "custom" volumes can be snapshotted');
      const body: { name?: string; expires_at?: string } = {};
      if (snap !== undefined) body.name = snap;
      if (opts.expiry === false) body.expires_at = NO_EXPIRY;
      await withStorage(globalsOf(cmd), async (c) => {
        await fetchVolume(c, v);
        if (opts.reuse && snap !== undefined) {
          const existing = await c.raw("GET", volumeUrl({ ...v, snapshot: snap }));
          if (existing.body.type !== "error") await send(c, "DELETE", volumeUrl({ ...v, snapshot: snap }));
        }
        await send(c, "POST", volumeUrl(v, "/snapshots"), body);
      });
    });

  volume
    .command("restore")
    .description("Restore a custom volume to one of its snapshots")
    .argument("<pool>", "Pool name")
    .argument("<volume>", "Volume name")
    .argument("<snapshot>", "Snapshot name")
    .action(async (pool: string, word: string, snap: string, _opts, cmd: Command) => {
      const v = parseVolumeArg(pool, word, { snapshots: false });
      await withStorage(globalsOf(cmd), async (c) => {
        const { volume: vol, etag } = await fetchVolume(c, v);
        await send(c, "PUT", volumeUrl(v), { ...volumePut(vol), restore: snap }, ifMatch(etag));
      });
    });

  registerVolumeAttach(volume);
  registerVolumeCopy(volume);
}
