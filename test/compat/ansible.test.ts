import test from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxImage } from "../helpers/busybox-image.js";
import { runCommand, TestDaemon } from "../helpers/daemon.js";

// Debian's Ansible (community.general.lxd_profile and lxd_container) against lodged over its
// unix socket. Each step runs the playbook twice: the first run makes the change, the second
// finds nothing to do (idempotence, as Ansible users rely on).

const PLAYBOOK = `
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    lxd: "unix:{{ socket }}"
  tasks:
    - name: profile
      when: step in ["create", "modify"]
      community.general.lxd_profile:
        url: "{{ lxd }}"
        name: ansprof
        state: present
        description: Made by Ansible
        config:
          limits.memory: "{{ '128MiB' if step == 'create' else '192MiB' }}"
          user.owner: ansible
        devices:
          share:
            type: disk
            source: "{{ share }}"
            path: /mnt/share
    - name: container
      when: step in ["create", "stop", "start", "restart", "destroy"]
      community.general.lxd_container:
        url: "{{ lxd }}"
        name: ans1
        state: "{{ {'create': 'started', 'stop': 'stopped', 'start': 'started', 'restart': 'restarted', 'destroy': 'absent'}[step] }}"
        source:
          type: image
          alias: bb
        profiles: [default, ansprof]
        timeout: 60
    - name: profile gone
      when: step in ["destroy", "delete-in-use"]
      community.general.lxd_profile:
        url: "{{ lxd }}"
        name: ansprof
        state: absent
`;

interface TaskResult {
  changed?: boolean;
  failed?: boolean;
  actions?: string[];
  msg?: string;
  skipped?: boolean;
}

interface Run {
  code: number;
  stats: { changed: number; failures: number; ok: number };
  /** Results of the tasks that ran (not skipped), by task name. */
  tasks: Record<string, TaskResult>;
}

async function playbook(d: TestDaemon, dir: string, step: string): Promise<Run> {
  const r = await runCommand("ansible-playbook", ["-i", "localhost,", join(dir, "play.yml"), "-e", `socket=${d.socket}`, "-e", `share=${join(dir, "share")}`, "-e", `step=${step}`, "-e", "ansible_python_interpreter=/usr/bin/python3"], {
    allowFail: true,
    timeoutMs: 240_000,
    env: {
      HOME: dir,
      ANSIBLE_STDOUT_CALLBACK: "json",
      ANSIBLE_LOCALHOST_WARNING: "False",
      ANSIBLE_INVENTORY_UNPARSED_WARNING: "False",
      ANSIBLE_NOCOLOR: "1",
    },
  });
  let out: { stats: Record<string, Run["stats"]>; plays: { tasks: { task: { name: string }; hosts: Record<string, TaskResult> }[] }[] };
  try {
    out = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
  } catch {
    throw new Error(`ansible-playbook printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  const tasks: Record<string, TaskResult> = {};
  for (const t of out.plays[0]!.tasks) if (!t.hosts.localhost?.skipped) tasks[t.task.name] = t.hosts.localhost!;
  return { code: r.code, stats: out.stats.localhost!, tasks };
}

test("ansible: a profile and a container using it, created, modified, stopped, restarted and deleted, idempotently", async (t) => {
  const d = await TestDaemon.start(t);
  await d.lxc(["image", "import", (await busyboxImage()).file, "--alias", "bb"]);
  const dir = await mkdtemp(join(tmpdir(), "lodge-ansible-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // The profile's disk: a directory of the test's own (other tests mount things under /tmp).
  await mkdir(join(dir, "share"));
  await chmod(dir, 0o755);
  await writeFile(join(dir, "play.yml"), PLAYBOOK);
  const instance = () => d.client.get<{ status: string; profiles: string[]; expanded_config: Record<string, string> }>("/1.0/instances/ans1");
  const twice = async (step: string, first: Record<string, string[]>) => {
    const one = await playbook(d, dir, step);
    assert.equal(one.code, 0, `${step}: ${JSON.stringify(one.tasks)}`);
    for (const [task, actions] of Object.entries(first)) assert.deepEqual(one.tasks[task]?.actions, actions, `${step}, first run: ${task}`);
    assert.equal(one.stats.changed, Object.keys(first).length, `${step}: first run changes`);
    const two = await playbook(d, dir, step);
    assert.equal(two.code, 0, `${step} again: ${JSON.stringify(two.tasks)}`);
    assert.equal(two.stats.changed, 0, `${step}: the second run changes nothing: ${JSON.stringify(two.tasks)}`);
    return one;
  };

  await twice("create", { profile: ["create"], container: ["create", "start"] });
  const made = await instance();
  assert.equal(made.status, "Running");
  assert.deepEqual(made.profiles, ["default", "ansprof"]);
  assert.equal(made.expanded_config["limits.memory"], "128MiB");
  const prof = await d.client.get<{ description: string; devices: unknown; used_by: string[] }>("/1.0/profiles/ansprof");
  assert.equal(prof.description, "Made by Ansible");
  assert.deepEqual(prof.devices, { share: { type: "disk", source: join(dir, "share"), path: "/mnt/share" } });
  assert.deepEqual(prof.used_by, ["/1.0/instances/ans1"]);
  await writeFile(join(dir, "share", "hello"), "from the host\n");
  assert.equal((await d.lxc(["exec", "ans1", "--", "cat", "/mnt/share/hello"])).stdout, "from the host\n", "the profile's disk is in the container");

  await twice("modify", { profile: ["apply_profile_configs"] });
  assert.equal((await instance()).expanded_config["limits.memory"], "192MiB");

  await twice("stop", { container: ["stop"] });
  assert.equal((await instance()).status, "Stopped");
  await twice("start", { container: ["start"] });
  const pid = (await d.client.get<{ pid: number }>("/1.0/instances/ans1/state")).pid;
  const restarted = await playbook(d, dir, "restart");
  assert.equal(restarted.code, 0, JSON.stringify(restarted.tasks));
  assert.deepEqual(restarted.tasks.container?.actions, ["restart"]);
  assert.equal((await instance()).status, "Running");
  assert.notEqual((await d.client.get<{ pid: number }>("/1.0/instances/ans1/state")).pid, pid, "a new init after the restart");

  // The profile is in use: Ansible must report the failure, not a deletion.
  const inUse = await playbook(d, dir, "delete-in-use");
  assert.notEqual(inUse.code, 0);
  assert.equal(inUse.tasks["profile gone"]?.failed, true);
  assert.match(inUse.tasks["profile gone"]?.msg ?? "", /in use by instance "ans1"/);
  assert.equal(inUse.stats.changed, 0);
  assert.deepEqual((await d.client.get<{ used_by: string[] }>("/1.0/profiles/ansprof")).used_by, ["/1.0/instances/ans1"]);

  await twice("destroy", { container: ["stop", "delete"], "profile gone": ["delete"] });
  assert.deepEqual(await d.client.get("/1.0/instances"), []);
  assert.deepEqual(await d.client.get("/1.0/profiles"), ["/1.0/profiles/default"]);
});
