import { randomUUID } from "node:crypto";
import { badRequest, notFound } from "../api/errors.js";
import type { Warning, WarningSeverity, WarningStatus } from "../api/warning.js";
import type { DocumentStore } from "../state/store.js";
import type { EventHub } from "../core/events.js";

const PREFIX = "warnings/";

export interface RaiseOptions {
  severity?: WarningSeverity;
  project?: string;
  /** The thing the warning is about, e.g. "/1.0/instances/c1?project=default"; "" for the host. */
  entityUrl?: string;
}

/**
 * Warnings about the host or an entity that need an operator's eye (a missing tool, a feature
 * the kernel lacks). Raising the same warning again bumps its count instead of adding a row.
 */
export class WarningService {
  constructor(
    private readonly store: DocumentStore,
    private readonly events: EventHub,
    private readonly location = "none",
  ) {}

  async raise(type: string, message: string, opts: RaiseOptions = {}): Promise<Warning> {
    const project = opts.project ?? "";
    const entity = opts.entityUrl ?? "";
    const now = new Date().toISOString();
    const { warning, created } = await this.store.txn(async (tx) => {
      const all = await tx.list<Warning>(PREFIX);
      const same = all.find((d) => d.value.type === type && d.value.entity_url === entity && d.value.project === project);
      if (same) {
        const w: Warning = {
          ...same.value,
          count: same.value.count + 1,
          last_seen_at: now,
          last_message: message,
          status: same.value.status === "resolved" ? "new" : same.value.status,
        };
        tx.put(same.key, w);
        return { warning: w, created: false };
      }
      const w: Warning = {
        uuid: randomUUID(),
        location: this.location,
        project,
        type,
        count: 1,
        first_seen_at: now,
        last_seen_at: now,
        last_message: message,
        severity: opts.severity ?? "low",
        status: "new",
        entity_url: entity,
      };
      tx.put(PREFIX + w.uuid, w);
      return { warning: w, created: true };
    });
    this.events.lifecycle(created ? "warning-created" : "warning-updated", `/1.0/warnings/${warning.uuid}`, {}, project || "default");
    return warning;
  }

  /** Marks warnings of `type` (about `entityUrl`) resolved: the condition went away. */
  async resolve(type: string, entityUrl = ""): Promise<void> {
    await this.store.txn(async (tx) => {
      for (const d of await tx.list<Warning>(PREFIX))
        if (d.value.type === type && d.value.entity_url === entityUrl && d.value.status !== "resolved")
          tx.put(d.key, { ...d.value, status: "resolved" });
    });
  }

  async list(project?: string): Promise<Warning[]> {
    const docs = await this.store.list<Warning>(PREFIX);
    return docs
      .map((d) => d.value)
      .filter((w) => project === undefined || w.project === "" || w.project === project)
      .sort((a, b) => (a.first_seen_at < b.first_seen_at ? -1 : 1));
  }

  async get(uuid: string): Promise<Warning> {
    const d = await this.store.get<Warning>(PREFIX + uuid);
    if (!d) throw notFound(`Warning "${uuid}" not found`);
    return d.value;
  }

  async setStatus(uuid: string, status: WarningStatus): Promise<void> {
    if (!["new", "acknowledged", "resolved"].includes(status))
      throw badRequest(`Invalid warning status "${status}": use new, acknowledged or resolved`);
    await this.store.txn(async (tx) => {
      const d = await tx.get<Warning>(PREFIX + uuid);
      if (!d) throw notFound(`Warning "${uuid}" not found`);
      tx.put(d.key, { ...d.value, status });
    });
    this.events.lifecycle("warning-acknowledged", `/1.0/warnings/${uuid}`);
  }

  async delete(uuid: string): Promise<void> {
    if (!(await this.store.delete(PREFIX + uuid))) throw notFound(`Warning "${uuid}" not found`);
    this.events.lifecycle("warning-deleted", `/1.0/warnings/${uuid}`);
  }
}
