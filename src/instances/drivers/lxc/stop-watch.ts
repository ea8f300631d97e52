import { watch, type FSWatcher } from "node:fs";

/**
 * Notices a container's end without polling. The monitor (`lxc-start -d -p PIDFILE`) unlinks
 * its pidfile as it exits, once the container is down, whatever stopped it (an API stop, a
 * poweroff inside, init killed): one inotify watch on the container's directory, filtered to
 * the pidfile's name, sees that, with no liblxc hook to configure and nothing to run per stop.
 * Other files there (console.log, lxc.log) change often and are ignored by name. A directory
 * that goes away (delete, rename) ends the watch with a last call, so a caller never waits on
 * a watch that can no longer fire.
 */
export function watchMonitorExit(dir: string, pidfileName: string, onMaybeStopped: () => void): () => void {
  let w: FSWatcher;
  try {
    w = watch(dir, { persistent: false }, (_event, file) => {
      if (file === pidfileName) onMaybeStopped();
    });
  } catch {
    queueMicrotask(onMaybeStopped);
    return () => undefined;
  }
  w.on("error", () => {
    w.close();
    onMaybeStopped();
  });
  return () => w.close();
}
