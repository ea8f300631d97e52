/**
 * `lodge remote …`: the image servers this client knows, kept in its config file (see
 * remote-config.ts). No daemon is contacted: remotes are client-side names.
 */
import type { Command } from "commander";
import { UsageError } from "./exit.js";
import { globalsOf } from "./globals.js";
import { printList, yesNo, type Column } from "./output.js";
import {
  checkProtocol,
  checkRemoteAddr,
  checkRemoteName,
  configPath,
  getRemote,
  loadRemoteConfig,
  LOCAL,
  RemoteConfigError,
  saveRemoteConfig,
  type Protocol,
  type RemoteConfig,
} from "./remote-config.js";

export interface RemoteRow {
  name: string;
  addr: string;
  protocol: Protocol;
  public: boolean;
  static: boolean;
  default: boolean;
}

const COLUMNS: Column<RemoteRow>[] = [
  { header: "NAME", value: (r) => (r.default ? `${r.name} (current)` : r.name) },
  { header: "URL", value: (r) => r.addr },
  { header: "PROTOCOL", value: (r) => r.protocol },
  { header: "PUBLIC", value: (r) => yesNo(r.public) },
  { header: "STATIC", value: (r) => yesNo(r.static) },
];

export function remoteRows(cfg: RemoteConfig): RemoteRow[] {
  return Object.entries(cfg.remotes)
    .map(([name, r]) => ({ name, ...r, static: name === LOCAL, default: name === cfg.defaultRemote }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Loads the config, applies `change`, and saves it. */
async function updateConfig(change: (cfg: RemoteConfig) => void): Promise<void> {
  const path = configPath();
  const cfg = await loadRemoteConfig(path);
  change(cfg);
  await saveRemoteConfig(cfg, path);
}

function refuseLocal(name: string, what: string): void {
  if (name === LOCAL) throw new RemoteConfigError(`The remote "local" is the local daemon and cannot be ${what}`);
}

export function register(program: Command): void {
  const remote = program
    .command("remote")
    .description("Manage the remote image servers this client knows")
    .addHelpText("after", "\nConfig file: $LODGE_CONF, else ~/.config/lodge/config.yml");

  remote
    .command("add")
    .description("Add a remote image server")
    .argument("<name>", "Remote name, used as NAME:image")
    .argument("<url>", "Server address: https://images.example.org, or unix:///path/to/unix.socket")
    .option("--protocol <protocol>", "Protocol: lxd or simplestreams", "lxd")
    .option("--public", "The server is public (no authentication)")
    .action(async (name: string, url: string, opts: { protocol: string; public?: boolean }) => {
      checkRemoteName(name);
      const protocol = checkProtocol(name, opts.protocol);
      const addr = checkRemoteAddr(name, url);
      if (addr.startsWith("unix:") && protocol !== "lxd")
        throw new RemoteConfigError(`Remote "${name}": a unix:// address is a daemon on this host and speaks --protocol lxd`);
      await updateConfig((cfg) => {
        if (cfg.remotes[name]) throw new RemoteConfigError(`Remote "${name}" already exists`);
        cfg.remotes[name] = { addr, protocol, public: opts.public === true || protocol === "simplestreams" };
      });
    });

  remote
    .command("list")
    .alias("ls")
    .description("List remotes")
    .action(async (_opts, cmd: Command) => {
      await printList(COLUMNS, remoteRows(await loadRemoteConfig()), globalsOf(cmd).format);
    });

  remote
    .command("remove")
    .alias("rm")
    .description("Remove a remote")
    .argument("<name>", "Remote name")
    .action(async (name: string) => {
      refuseLocal(name, "removed");
      await updateConfig((cfg) => {
        getRemote(cfg, name);
        if (cfg.defaultRemote === name) throw new RemoteConfigError(`Remote "${name}" is the default: switch to another first`);
        delete cfg.remotes[name];
      });
    });

  remote
    .command("rename")
    .alias("mv")
    .description("Rename a remote")
    .argument("<name>", "Current name")
    .argument("<new-name>", "New name")
    .action(async (name: string, newName: string) => {
      refuseLocal(name, "renamed");
      checkRemoteName(newName);
      await updateConfig((cfg) => {
        const r = getRemote(cfg, name);
        if (cfg.remotes[newName]) throw new RemoteConfigError(`Remote "${newName}" already exists`);
        delete cfg.remotes[name];
        cfg.remotes[newName] = r;
        if (cfg.defaultRemote === name) cfg.defaultRemote = newName;
      });
    });

  remote
    .command("get-default")
    .description("Print the default remote")
    .action(async () => {
      process.stdout.write((await loadRemoteConfig()).defaultRemote + "\n");
    });

  remote
    .command("switch")
    .description("Make a remote the default")
    .argument("<name>", "Remote name")
    .action(async (name: string) => {
      if (!name) throw new UsageError("No remote given");
      await updateConfig((cfg) => {
        getRemote(cfg, name);
        cfg.defaultRemote = name;
      });
    });
}
