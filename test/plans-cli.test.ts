// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * `mesh plan submit|status|graph|list`, `mesh tasks --plan`, `mesh fetch --plan` and the plan side of
 * `mesh task <id>` (plan, needs, what it waits on, what blocks it) end to end:
 * the built CLI against a real meshd process on a real nats-server, command tasks on a real git
 * repository shipped with `repo: .`.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { MESH_BIN } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";

const ID = ["-c", "user.name=Plan User", "-c", "user.email=plan@example.com"];
let nats: NatsServer;
let meshd: Meshd;
let repo: string;

async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa("git", [...ID, ...args], { cwd, env: { LC_ALL: "C" } })).stdout.trim();
}

async function mesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string; json(): any }> {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    cwd: repo,
    stdin: "ignore",
    env: { NO_COLOR: "1", MESH_DAEMON: meshd.socket, MESH_TOKEN: "" },
    timeout: 120_000,
  });
  const stdout = String(r.stdout);
  return { code: r.exitCode ?? -1, stdout, stderr: String(r.stderr), json: () => JSON.parse(stdout) };
}

beforeAll(async () => {
  nats = await NatsServer.start();
  meshd = await startMeshdProcess({ natsUrl: nats.url, name: "planner", prefix: "plans-cli" });
  repo = await makeTempDir("plans-cli-repo-");
  await git(repo, "init", "-q", "-b", "main");
  await writeFile(join(repo, "README"), "plans\n");
  await git(repo, "add", ".");
  await git(repo, "commit", "-q", "-m", "first");
}, 120_000);

afterAll(async () => {
  if (meshd) await stopMeshdProcess(meshd);
  await nats?.cleanup();
});

const uid = (p: string) => `${p}-${randomBytes(3).toString("hex")}`;
const writes = (file: string) => [
  "node",
  "-e",
  `require('fs').writeFileSync(${JSON.stringify(file)}, 'x\\n')`,
];
const defaults = { prompt: "p", repo: ".", runner: "command", maxAttempts: 1 };

async function planFile(doc: unknown): Promise<string> {
  const file = join(repo, `${uid("plan")}.json`);
  await writeFile(file, JSON.stringify(doc));
  return file;
}

describe("mesh plan", () => {
  it("refuses a cycle and an unknown need with the problem shown (exit 2), and writes nothing", async () => {
    const id = uid("cyc");
    const cycle = await planFile({
      plan: id,
      defaults,
      tasks: [
        { id: "x", needs: ["z"], command: writes("x") },
        { id: "y", needs: ["x"], command: writes("y") },
        { id: "z", needs: ["y"], command: writes("z") },
      ],
    });
    const r = await mesh(["plan", "submit", cycle]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/a cycle: (x -> z -> y -> x|y -> x -> z -> y|z -> y -> x -> z)/);
    const unknown = await planFile({
      plan: id,
      defaults,
      tasks: [{ id: "x", needs: ["nope"], command: writes("x") }],
    });
    const u = await mesh(["--json", "plan", "submit", unknown]);
    expect(u.code).toBe(2);
    const err = JSON.parse(u.stderr).error;
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", field: "tasks[0].needs[0]" });
    expect(err.message).toContain('"nope" is not a task of this plan (its tasks: x)');
    expect((await mesh(["--json", "plan", "list"])).json().plans.map((p: any) => p.id)).not.toContain(id);
    expect((await mesh(["--json", "tasks", "--plan", id])).json().tasks).toEqual([]);
    expect((await mesh(["plan", "status", id])).code).toBe(4);
  }, 60_000);

  it("submits, waits, shows the tree, the graph and the list, lists its tasks and fetches its results", async () => {
    const id = uid("ab");
    const file = await planFile({
      plan: id,
      title: "two steps",
      defaults,
      tasks: [
        { id: "a", command: writes("a.txt") },
        { id: "b", needs: ["a"], command: writes("b.txt") },
        { id: "c", needs: ["a", "b"], command: writes("c.txt") },
      ],
    });
    const sub = await mesh(["--json", "plan", "submit", file, "--wait"]);
    expect(sub.code, sub.stderr).toBe(0);
    const out = sub.json();
    expect(out.plan).toBe(id);
    expect(out.tasks.map((t: any) => [t.id, t.state])).toEqual([
      [`${id}-a`, "succeeded"],
      [`${id}-b`, "succeeded"],
      [`${id}-c`, "succeeded"],
    ]);

    const st = await mesh(["--json", "plan", "status", id]);
    expect(st.code).toBe(0);
    expect(st.json().plan).toMatchObject({ id, title: "two steps" });
    expect(st.json().tasks[2]).toMatchObject({ id: `${id}-c`, needs: [`${id}-a`, `${id}-b`], waitingOn: [] });
    const human = await mesh(["plan", "status", id]);
    expect(human.stdout).toContain(`plan ${id} (two steps)`);
    expect(human.stdout).toMatch(/^a {2}succeeded {2}on /m);
    expect(human.stdout).toMatch(/^└─ b {2}succeeded/m);
    expect(human.stdout).toMatch(/^ {3}└─ c {2}succeeded .*\(also needs a\)/m);

    const mermaid = await mesh(["plan", "graph", id, "--mermaid"]);
    expect(mermaid.stdout.split("\n")).toEqual(
      expect.arrayContaining(["graph TD", '  n0["a"]', "  n0 --> n1", "  n0 --> n2", "  n1 --> n2"]),
    );
    const graph = await mesh(["--json", "plan", "graph", id]);
    expect(graph.json().edges).toHaveLength(3);

    const list = (await mesh(["--json", "plan", "list"])).json().plans.find((p: any) => p.id === id);
    expect(list).toMatchObject({ tasks: 3, states: { succeeded: 3 } });
    const tasks = (await mesh(["--json", "tasks", "--plan", id])).json().tasks;
    expect(tasks.map((t: any) => t.id).sort()).toEqual([`${id}-a`, `${id}-b`, `${id}-c`]);

    const f = await mesh(["--json", "fetch", "--plan", id]);
    expect(f.code, f.stderr).toBe(0);
    expect(
      f
        .json()
        .results.map((r: any) => [r.id, r.outcome])
        .sort(),
    ).toEqual([
      [`${id}-a`, "created"],
      [`${id}-b`, "created"],
      [`${id}-c`, "created"],
    ]);
    expect(await git(repo, "show", `mesh/${id}-c:c.txt`)).toBe("x");
    const both = await mesh(["fetch", "--plan", id, "--all"]);
    expect(both.code).toBe(2);
  }, 120_000);

  it("--wait exits 1 when a task fails and names the cancelled dependent", async () => {
    const id = uid("bad");
    const file = await planFile({
      plan: id,
      defaults,
      tasks: [
        { id: "a", command: ["node", "-e", "process.exit(7)"] },
        { id: "b", needs: ["a"], command: writes("b") },
      ],
    });
    const r = await mesh(["--json", "plan", "submit", file, "--wait"]);
    expect(r.code).toBe(1);
    const b = r.json().tasks.find((t: any) => t.id === `${id}-b`);
    expect(b).toMatchObject({ state: "cancelled", cancelCause: { dependency: `${id}-a` } });
    expect(b.reason).toBe(`dependency ${id}-a died: attempts exhausted (1/1); last: exit code 7`);
  }, 60_000);

  it("status shows the conflicts between the plan's finished branches, as lines and in --json", async () => {
    const id = uid("clash");
    const put = (text: string) => [
      "node",
      "-e",
      `require('fs').writeFileSync('clash.txt', ${JSON.stringify(text)})`,
    ];
    const file = await planFile({
      plan: id,
      defaults,
      tasks: [
        { id: "p", command: put("by p\n") },
        { id: "q", command: put("by q\n") },
        { id: "other", command: writes("other.txt") },
      ],
    });
    const sub = await mesh(["--json", "plan", "submit", file, "--wait"]);
    expect(sub.code, sub.stderr).toBe(0);
    // The check runs after the task's success, in the background: the status shows it once stored.
    const st = await waitFor(
      async () => {
        const r = await mesh(["--json", "plan", "status", id]);
        return r.json().conflicts.length > 0 ? r.json() : undefined;
      },
      { name: "the conflict in plan status --json", timeoutMs: 30_000, intervalMs: 200 },
    );
    const heads = await Promise.all(
      ["p", "q"].map(
        async (n) => (await mesh(["--json", "task", `${id}-${n}`])).json().task.result.bundle.head,
      ),
    );
    expect(heads[0]).toMatch(/^[0-9a-f]{40}$/);
    expect(st.conflicts).toEqual([
      {
        tasks: [`${id}-p`, `${id}-q`],
        heads,
        files: ["clash.txt"],
        foundAt: expect.any(String),
        foundBy: expect.any(String),
      },
    ]);
    const human = await mesh(["plan", "status", id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^conflict: p and q do not merge in clash\.txt \(found \S+ by \S+\)$/m);
    // One line per conflicting pair; the task on another file is in none.
    expect(human.stdout.match(/^conflict:/gm)).toHaveLength(1);
  }, 60_000);

  it("`mesh task` of a plan's task shows its plan and needs, what it waits on and what blocks it", async () => {
    const id = uid("wt");
    const flag = join(await makeTempDir("plans-cli-flag-"), "go");
    const file = await planFile({
      plan: id,
      defaults,
      tasks: [
        {
          id: "slow",
          command: [
            "node",
            "-e",
            `const fs=require('fs');const t=setInterval(()=>{if(fs.existsSync(${JSON.stringify(flag)})){clearInterval(t)}},50)`,
          ],
        },
        { id: "fails", command: ["node", "-e", "process.exit(3)"] },
        { id: "w", needs: ["slow", "fails"], dependencyFailure: "wait", command: writes("w") },
      ],
    });
    expect((await mesh(["plan", "submit", file])).code).toBe(0);
    const task = async (n: string) => (await mesh(["--json", "task", `${id}-${n}`])).json().task;
    const blocked = await waitFor(
      async () => {
        const t = await task("w");
        return t.blockedBy ? t : undefined;
      },
      { name: "w blocked by fails", timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(blocked).toMatchObject({
      state: "waiting",
      plan: id,
      needs: [`${id}-slow`, `${id}-fails`],
      waitingOn: [`${id}-slow`, `${id}-fails`],
      blockedBy: { dependency: `${id}-fails` },
      cancelCause: null,
    });
    const human = await mesh(["task", `${id}-w`]);
    expect(human.stdout).toMatch(new RegExp(`^plan: +${id}$`, "m"));
    expect(human.stdout).toMatch(new RegExp(`^needs: +${id}-slow, ${id}-fails$`, "m"));
    expect(human.stdout).toMatch(new RegExp(`^waits on: +${id}-slow, ${id}-fails$`, "m"));
    expect(human.stdout).toMatch(
      new RegExp(`^blocked: +dependency ${id}-fails (died|failed): .*exit code 3$`, "m"),
    );

    await writeFile(flag, "");
    const after = await waitFor(
      async () => {
        const t = await task("w");
        return t.waitingOn.length === 1 ? t : undefined;
      },
      { name: "w waits on fails only", timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(after.waitingOn).toEqual([`${id}-fails`]);
    // A task that waits for nothing: its plan, no needs, nothing waited on; a task of no plan: none.
    expect(await task("slow")).toMatchObject({ plan: id, needs: [], waitingOn: [], blockedBy: null });
    const lone = join(repo, `${uid("lone")}.json`);
    await writeFile(lone, JSON.stringify({ id: uid("lone"), ...defaults, command: writes("lone") }));
    const loneId = JSON.parse(await readFile(lone, "utf8")).id;
    expect((await mesh(["submit", lone, "--wait"])).code).toBe(0);
    const plain = (await mesh(["--json", "task", loneId])).json().task;
    expect(plain).toMatchObject({ plan: null, needs: [], waitingOn: [], blockedBy: null, cancelCause: null });
    expect((await mesh(["task", loneId])).stdout).not.toMatch(/^plan:/m);
    expect((await mesh(["cancel", `${id}-w`])).code).toBe(0);
  }, 60_000);
  it("refuses a plan without tasks and `defaults` the daemon refuses, as the daemon does (exit 2)", async () => {
    const id = uid("doc");
    // `plan:` at the top makes it a plan, not one task with a `plan` field
    const bare = await planFile({ plan: id, title: "nothing to do" });
    const b = await mesh(["--json", "plan", "submit", bare]);
    expect(b.code).toBe(2);
    expect(JSON.parse(b.stderr).error).toMatchObject({ code: "INVALID_ARGUMENT", field: "tasks" });
    // one task, so folding owns into it would pass every other check
    const owns = await planFile({
      plan: id,
      defaults: { ...defaults, owns: ["src/**"] },
      tasks: [{ id: "a", command: writes("src/a") }],
    });
    const o = await mesh(["--json", "plan", "submit", owns]);
    expect(o.code).toBe(2);
    expect(JSON.parse(o.stderr).error).toMatchObject({ code: "INVALID_ARGUMENT", field: "defaults.owns" });
    const plan = await planFile({ plan: id, defaults: { ...defaults, plan: "x" }, tasks: [{ id: "a" }] });
    const p = await mesh(["--json", "plan", "submit", plan]);
    expect(JSON.parse(p.stderr).error).toMatchObject({ field: "defaults.plan" });
    expect((await mesh(["plan", "status", id])).code).toBe(4);
  }, 60_000);

  it("a usage error points at the subcommand's own --help", async () => {
    const r = await mesh(["plan", "status"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'plan' (see mesh plan status --help)");
    const j = await mesh(["--json", "plan", "graph"]);
    expect(JSON.parse(j.stderr).error.message).toContain("(see `mesh plan graph --help`)");
  }, 30_000);

  it("`ownsViolation: report`: the paths outside owns in `mesh task`, its --json and `mesh watch`", async () => {
    const id = uid("rep");
    const file = await planFile({
      plan: id,
      defaults,
      tasks: [{ id: "r", owns: ["docs/**"], ownsViolation: "report", command: writes("stray.txt") }],
    });
    expect((await mesh(["plan", "submit", file, "--wait"])).code).toBe(0);
    const j = (await mesh(["--json", "task", `${id}-r`])).json().task;
    expect(j.result).toMatchObject({ ownsViolations: ["stray.txt"], ownsViolationsOmitted: 0 });
    expect((await mesh(["task", `${id}-r`])).stdout).toMatch(
      /^outside owns: +stray\.txt \(ownsViolation: report\)$/m,
    );
    expect((await mesh(["watch", `${id}-r`])).stdout).toMatch(
      /agent +owns_violation \(report\): outside owns: stray\.txt$/m,
    );
  }, 60_000);
  it("--wait says on stderr that no live worker serves a task and gives up after --unschedulable-timeout (exit 6)", async () => {
    const id = uid("uns");
    const file = await planFile({
      plan: id,
      defaults: { ...defaults, pool: "nobody-serves-this" },
      tasks: [
        { id: "a", command: writes("a") },
        { id: "b", needs: ["a"], command: writes("b") },
      ],
    });
    // long enough for a dozen polls: each pause must not leave an abort listener behind
    const r = await mesh(["plan", "submit", file, "--wait", "--unschedulable-timeout", "7s"]);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(
      new RegExp(
        `^warning: task ${id}-a cannot run yet: no live worker serves pool "nobody-serves-this"`,
        "m",
      ),
    );
    expect(r.stderr).toMatch(new RegExp(`^error: task ${id}-a is still queued: .*gave up after 7s`, "m"));
    expect(r.stderr).not.toContain("MaxListenersExceededWarning");
    const st = await mesh(["--json", "plan", "status", id]);
    const [a, b] = st.json().tasks;
    expect(a).toMatchObject({
      state: "queued",
      unschedulable: expect.stringContaining("nobody-serves-this"),
    });
    expect(b).toMatchObject({ state: "waiting", unschedulable: null });
    expect((await mesh(["plan", "status", id])).stdout).toMatch(
      /^a {2}queued {2}unschedulable: no live worker/m,
    );
    expect((await mesh(["cancel", `${id}-a`])).code).toBe(0);
  }, 60_000);
  it("a plan re-submitted with a change is refused (exit 2) naming what changed", async () => {
    const id = uid("re");
    const tasks = [
      { id: "a", command: writes("a") },
      { id: "b", needs: ["a"], command: writes("b") },
    ];
    expect((await mesh(["plan", "submit", await planFile({ plan: id, defaults, tasks })])).code).toBe(0);
    const again = async (t: unknown[]) => {
      const r = await mesh(["--json", "plan", "submit", await planFile({ plan: id, defaults, tasks: t })]);
      expect(r.code, r.stderr).toBe(2);
      // the last line: a warning about the repo's uncommitted plan files may come first
      const err = JSON.parse(r.stderr.trim().split("\n").pop()!).error;
      expect(err).toMatchObject({ code: "ALREADY_EXISTS", field: "plan" });
      return err.message as string;
    };
    expect(await again([tasks[0], { ...tasks[1], command: writes("c") }])).toContain(
      `task ${id}-b differs in command`,
    );
    expect(await again([...tasks, { id: "c", command: writes("c") }])).toContain(`new tasks: ${id}-c`);
    expect(await again([tasks[0]])).toContain(`tasks no longer in it: ${id}-b`);
    expect(await again([tasks[1], tasks[0]])).toContain("the same tasks in another order");
    expect((await mesh(["plan", "submit", await planFile({ plan: id, defaults, tasks })])).code).toBe(0);
  }, 60_000);
  it("a wide fan-in stays one short line in the tree: the first needs, then how many more", async () => {
    const id = uid("fan");
    const roots = Array.from({ length: 12 }, (_, i) => ({ id: `r${String(i).padStart(2, "0")}` }));
    const file = await planFile({
      plan: id,
      defaults: { ...defaults, pool: "nobody-serves-this" },
      tasks: [...roots, { id: "sink", needs: roots.map((r) => r.id) }].map((t) => ({
        ...t,
        command: writes(t.id),
      })),
    });
    expect((await mesh(["plan", "submit", file])).code).toBe(0);
    const also = "(also needs r00, r01, r02, r03, r04, r05, r06, r07, and 3 more)";
    expect((await mesh(["plan", "graph", id])).stdout).toContain(`└─ sink  ${also}`);
    expect((await mesh(["plan", "status", id])).stdout).toMatch(
      /^└─ sink {2}waiting {2}\(also needs r00, .*r07, and 3 more\) {2}waits on r00, .*r07, and 4 more$/m,
    );
    expect((await mesh(["--json", "plan", "graph", id])).json().edges).toHaveLength(12);
  }, 60_000);
});
