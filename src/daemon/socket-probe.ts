import { connectUnix } from "../sys/unix-socket.js";

/** Whether something accepts connections on the unix socket at `path` (a daemon is there). */
export function socketAnswers(path: string): Promise<boolean> {
  return connectUnix(path).then(
    (s) => {
      s.destroy();
      return true;
    },
    () => false,
  );
}
