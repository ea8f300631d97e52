/**
 * Loading a network's table into nftables: one `nft -f -` per change (atomic, see
 * nft-ruleset.ts), skipped when the table is there and the script is the one last loaded.
 */
import { readFile, rm } from "node:fs/promises";
import { run } from "../../../sys/exec.js";
import { writeFileAtomic } from "./atomic-file.js";
import { tableName, type NetworkFiles } from "./names.js";
import { nftDeleteScript } from "./nft-ruleset.js";

const NFT_TIMEOUT_MS = 15_000;

export async function tableExists(name: string, signal?: AbortSignal): Promise<boolean> {
  const r = await run("nft", ["list", "table", "inet", tableName(name)], { allowFail: true, signal, timeoutMs: NFT_TIMEOUT_MS });
  return r.code === 0;
}

/** Loads `script` unless the table already holds it; returns whether it loaded. */
export async function loadTable(name: string, script: string, files: NetworkFiles, signal?: AbortSignal): Promise<boolean> {
  const last = await readFile(files.nft, "utf8").catch(() => undefined);
  if (last === script && (await tableExists(name, signal))) return false;
  await run("nft", ["-f", "-"], { input: script, signal, timeoutMs: NFT_TIMEOUT_MS });
  await writeFileAtomic(files.nft, script, 0o600);
  return true;
}

/** Deletes the table; quiet when it is not there. */
export async function deleteTable(name: string, files?: NetworkFiles): Promise<void> {
  await run("nft", ["-f", "-"], { input: nftDeleteScript(name), timeoutMs: NFT_TIMEOUT_MS });
  if (files) await rm(files.nft, { force: true });
}
