/**
 * Renaming a stopped instance: the engine's artefacts, the volume (with its snapshots' data)
 * and the records move together, or nothing does. Templates with the "rename" trigger apply
 * at the next start.
 */
import { badRequest, conflict } from "../api/errors.js";
import { Revert } from "../core/revert.js";
import { validateInstanceName } from "./config/name.js";
import { hostName, instanceKey, instanceUrl, type InstanceRecord } from "./record.js";
import { LOCK_TIMEOUT_MS, type InstanceService, type InstanceServiceDeps } from "./service.js";
import { renameSnapshotRecords } from "./snapshots/record.js";

export async function renameInstance(
d: InstanceServiceDeps,
svc: Pick<InstanceService, "locks" | "record">,
project: string,
name: string,
newName: unknown,
): Promise<InstanceRecord> {
  const target = validateInstanceName(newName);
  return svc.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
    const r = await svc.record(project, name);
    if ((await d.driver.status(hostName(project, name))).status !== "Stopped")
      throw badRequest(`Instance "${name}" must be stopped to be renamed`);
    if (await d.store.get(instanceKey(project, target))) throw conflict(`Instance "${target}" already exists`);
    const undo = new Revert();
    try {
      await d.driver.delete(hostName(project, name));
      undo.add(async () => d.driver.create(await d.specs.build(r, await d.storage.instancePath(r.pool, project, name, r.type))));
      const path = await d.storage.renameInstanceVolume(r.pool, project, name, target, r.type);
      undo.add(() => d.storage.renameInstanceVolume(r.pool, project, target, name, r.type));
      const renamed: InstanceRecord = { ...r, name: target, config: { ...r.config, "volatile.apply_template": "rename" } };
      await d.driver.create(await d.specs.build(renamed, path));
      // Its snapshots go with it: their data moved with the volume, their records here.
      await d.store.txn(async (tx) => {
        tx.delete(instanceKey(project, name));
        tx.put(instanceKey(project, target), renamed);
        await renameSnapshotRecords(tx, project, name, target);
      });
      undo.commit();
      d.events.lifecycle("instance-renamed", instanceUrl(project, target), { old_name: name }, project);
      return renamed;
    } finally {
      await undo.run();
    }
  });
}
