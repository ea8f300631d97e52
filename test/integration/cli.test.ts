import test, { after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { LODGE, TestDaemon, runCommand, type RunResult } from "../helpers/daemon.js";
import { fullProgram } from "../../src/cli/completion.js";
import { LODGE_VERSION } from "../../src/version.js";

// One daemon for the file: every test here only reads, or changes user.* keys.
let d: TestDaemon;
before(async () => {
  d = await TestDaemon.start(undefined);
});
after(async () => {
  await d?.destroy();
});

const lodge = (args: string[]) => d.lodge(args, { allowFail: true });

/** `lodge` pointed at a directory where no daemon runs. */
async function withoutDaemon<T>(fn: (run: (args: string[]) => Promise<RunResult>) => Promise<T>): Promise<T> {
  const empty = await mkdtemp(join(tmpdir(), "lodge-nodaemon-"));
  try {
    return await fn((args) => runCommand(process.execPath, [LODGE, ...args], { allowFail: true, env: { LODGE_DIR: empty } }));
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
}

test("lodge info shows a summary of the server", async () => {
  const r = await lodge(["info"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^Server:\\s+lodge ${LODGE_VERSION.replace(/\./g, "\\.")}$`, "m"));
  assert.match(r.stdout, /^API:\s+1\.0 \(stable\)/m);
  assert.match(r.stdout, /^Auth:\s+trusted$/m);
  assert.match(r.stdout, /^Kernel:\s+Linux /m);
});

test("lodge info --format json|yaml prints the whole server object", async () => {
  const json = await lodge(["--format", "json", "info"]);
  assert.equal(json.code, 0, json.stderr);
  const server = JSON.parse(json.stdout);
  assert.equal(server.api_version, "1.0");
  assert.equal(server.environment.server, "lodge");
  // Global options are accepted after the verb too.
  const yaml = await lodge(["info", "--format", "yaml"]);
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.deepEqual(Object.keys(parseYaml(yaml.stdout)).sort(), Object.keys(server).sort());
});

test("lodge version shows both versions, and the client's alone without a daemon", async () => {
  const r = await lodge(["version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Client version: ${LODGE_VERSION}\nServer version: ${LODGE_VERSION}\n`);
  const alone = await withoutDaemon((run) => run(["version"]));
  assert.equal(alone.code, 0, alone.stderr);
  assert.equal(alone.stdout, `Client version: ${LODGE_VERSION}\nServer version: unreachable\n`);
});

test("lodge query prints the metadata as JSON", async () => {
  const r = await lodge(["query", "/1.0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).api_version, "1.0");
  const raw = await lodge(["query", "--raw", "/"]);
  assert.equal(raw.code, 0, raw.stderr);
  assert.deepEqual(JSON.parse(raw.stdout), { ...JSON.parse(raw.stdout), type: "sync", metadata: ["/1.0"] });
});

test("lodge query --wait on a synchronous answer prints it (nothing to wait for)", async () => {
  const r = await lodge(["query", "--wait", "/1.0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).api_version, "1.0");
});

test("lodge query changes things with -X and -d", async () => {
  const r = await lodge(["query", "-X", "PATCH", "-d", '{"config":{"user.cli-test":"yes"}}', "/1.0"]);
  assert.equal(r.code, 0, r.stderr);
  const server = await d.client.get<{ config: Record<string, string> }>("/1.0");
  assert.equal(server.config["user.cli-test"], "yes");
});

test("lodge query exits 1 with the API's error", async () => {
  const r = await lodge(["query", "-X", "PUT", "-d", '{"config":{"bogus":"1"}}', "/1.0"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: .*"bogus"/);
  assert.equal(r.stdout, "");
  const missing = await lodge(["query", "/1.0/nothing-here"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^Error: /);
});

test("a mistake on the command line exits 2", async () => {
  for (const args of [["query", "-d", "{not json", "/1.0"], ["query", "1.0"], ["no-such-verb"], ["info", "--no-such-option"], ["--format", "xml", "info"], []]) {
    const r = await lodge(args);
    assert.equal(r.code, 2, `lodge ${args.join(" ")}: ${r.stderr}`);
    assert.notEqual(r.stderr, "", `lodge ${args.join(" ")} says why`);
  }
});

test("lodge operation list shows the lxc columns, and [] in json", async () => {
  const r = await lodge(["operation", "list"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\| ID +\| TYPE +\| DESCRIPTION +\| STATUS +\| CANCELABLE +\| CREATED +\|$/m);
  const json = await lodge(["--format", "json", "operation", "list", "--all-projects"]);
  assert.equal(json.code, 0, json.stderr);
  assert.ok(Array.isArray(JSON.parse(json.stdout)));
  const missing = await lodge(["operation", "show", "00000000-0000-0000-0000-000000000000"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^Error: .*not found/i);
});

test("lodge warning list answers (empty is fine)", async () => {
  const r = await lodge(["warning", "list"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\| UUID +\| TYPE +\| STATUS +\| SEVERITY +\| COUNT +\| PROJECT +\| LAST SEEN +\|$/m);
  const csv = await lodge(["--format", "csv", "warning", "list", "--all"]);
  assert.equal(csv.code, 0, csv.stderr);
});

test("lodge monitor --type lifecycle prints the event a config change causes", async (t) => {
  const child = spawn(process.execPath, [LODGE, "monitor", "--type", "lifecycle"], {
    env: { ...process.env, LODGE_DIR: d.dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  // The monitor subscribes some time after it starts: change the config until it reports one.
  const deadline = Date.now() + 20_000;
  for (let i = 0; !out.includes("config-updated"); i++) {
    assert.ok(Date.now() < deadline, `no lifecycle event seen; stdout: ${out} stderr: ${err}`);
    assert.equal(child.exitCode, null, `monitor exited early: ${err}`);
    const r = await lodge(["query", "-X", "PATCH", "-d", `{"config":{"user.x":"${i}"}}`, "/1.0"]);
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill("SIGINT");
  assert.equal(await exited, 0, err);
  const first = parseYaml(out.split(/\n\n/)[0]!);
  assert.equal(first.type, "lifecycle");
  assert.equal(first.metadata.action, "config-updated");
  assert.equal(first.metadata.source, "/1.0");
  assert.ok(!/^type: operation$/m.test(out), "only lifecycle events are shown");
});

test("lodge admin waitready returns at once when the daemon answers, exits 1 on timeout", async () => {
  const ready = await lodge(["admin", "waitready", "--timeout", "5"]);
  assert.equal(ready.code, 0, ready.stderr);
  const notReady = await withoutDaemon((run) => run(["admin", "waitready", "--timeout", "0.3"]));
  assert.equal(notReady.code, 1);
  assert.match(notReady.stderr, /^Error: lodged is not ready after 0\.3 seconds/);
});

test("without a daemon, verbs exit 3 and say what to do", async () => {
  await withoutDaemon(async (run) => {
    for (const args of [["info"], ["operation", "list"], ["query", "/1.0"], ["monitor"]]) {
      const r = await run(args);
      assert.equal(r.code, 3, `lodge ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^Error: cannot connect to .*unix\.socket: is lodged running\? Start it with `lodged`, or set LODGE_DIR/);
    }
  });
});

test("--help works for every verb and subcommand, and lists the exit codes at the top", async () => {
  const paths: string[][] = [];
  const walk = (cmd: Command, path: string[]) => {
    paths.push(path);
    for (const c of cmd.commands) walk(c, [...path, c.name()]);
  };
  walk(await fullProgram(), []);
  assert.ok(paths.length > 15, `found only ${paths.length} commands`);
  await Promise.all(
    paths.map(async (p) => {
      const r = await lodge([...p, "--help"]);
      assert.equal(r.code, 0, `lodge ${p.join(" ")} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: lodge${p.map((w) => " " + w).join("")}\\b`), `lodge ${p.join(" ")} --help`);
    }),
  );
  const top = await lodge(["--help"]);
  assert.match(top.stdout, /Exit codes:\n\s+0 +success\n\s+1 .*\n\s+2 +usage error.*\n\s+3 +cannot reach lodged/);
  for (const verb of ["info", "version", "operation", "monitor", "query", "warning", "admin", "completion"])
    assert.match(top.stdout, new RegExp(`^  ${verb}\\b`, "m"));
});

test("lodge completion bash prints a script bash accepts", async () => {
  const r = await lodge(["completion", "bash"]);
  assert.equal(r.code, 0, r.stderr);
  const check = await runCommand(
    "bash",
    ["-c", 'eval "$(cat)"; COMP_WORDS=(lodge operation ""); COMP_CWORD=2; _lodge; echo "${COMPREPLY[*]}"'],
    { input: r.stdout },
  );
  assert.match(check.stdout, /\blist\b.*\bshow\b.*\bdelete\b/);
});
