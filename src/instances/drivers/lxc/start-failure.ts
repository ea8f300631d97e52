/** Why a container's start failed, in words taken from liblxc's log. */
/** liblxc's generic follow-ups to a failure, which name no cause. */
const GENERIC = /lxc_start\.c|get_config_unsupported_key|sync\.c:|wait_on_daemonized_start|__lxc_start:|do_start:|lxc_setup:|lxc_spawn:/;

/**
 * Why a start failed, from what it wrote to lxc.log (`log` from byte `from` on): its first
 * specific ERROR lines, without the generic follow-ups ("an error occurred in another process",
 * "failed to spawn") and with paths under liblxc's rootfs mount shown as the container's own;
 * else the tool's stderr.
 */
export function startFailure(log: Buffer, from: number, stderr: string): string {
  const errors = log.subarray(from).toString("utf8").split("\n").filter((l) => / ERROR /.test(l));
  const specific = errors.filter((l) => !GENERIC.test(l));
  const text = (l: string) =>
    l
      .replace(/^.* ERROR\s+\S+ - [^ ]+ - /, "")
      .replace(/"[^"]*\/lxc\/rootfs(\/[^"]*)"/g, '"$1" (in the container)')
      .replace(/ onto "/, ' on "');
  const lines = [...new Set((specific.length ? specific : errors).map(text))].slice(0, 2);
  return lines.length ? lines.join("; ") : stderr.trim();
}
