/**
 * The result-time ownership gate (issue 14 §3): after a successful attempt of a task with
 * `owns`, every file changed between its base and its head must lie inside `owns`. Command tasks
 * on a real daemon, a real nats-server and real git: inside passes; outside fails for good with
 * the paths named (a rename counts both paths, a deletion counts, the task's own commits count);
 * `ownsViolation: report` passes and records the paths. And the real Claude Code against the
 * mock Messages API: a write through a script run by Bash outside owns is caught at the gate.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateTaskSpec } from "../daemon/index.js";
import { describeOwnsViolations, ownsViolations } from "../daemon/plans/index.js";
import type { TaskEvent } from "../daemon/tasks/index.js";
import { makeTempDir } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  type MockReply,
  startMockAnthropic,
  writeFile as writeFileTool,
} from "./mock-anthropic/index.js";
import { useMesh } from "./support/fixture.js";
import { startDaemon, waitForState } from "./support/mesh.js";
import { nodeTask } from "./support/tasks.js";

describe("the gate's pure part", () => {
  it("lists the changed paths outside owns, sorted, once each", () => {
    expect(ownsViolations(["src/a.ts", "docs/x.md", "old.txt", "docs/x.md"], ["src/**"])).toEqual([
      "docs/x.md",
      "old.txt",
    ]);
    expect(ownsViolations(["src/a.ts", "src/b/c.ts"], ["src/**"])).toEqual([]);
    expect(ownsViolations(["a"], [])).toEqual(["a"]);
  });

  it("names up to 20 paths, then how many more", () => {
    const paths = Array.from({ length: 25 }, (_, i) => `x/${String(i).padStart(2, "0")}.txt`);
    const text = describeOwnsViolations(paths, ["src/**"]);
    expect(text).toContain("changed 25 files outside owns [src/**]: x/00.txt, x/01.txt");
    expect(text).toContain("x/19.txt and 5 more");
    expect(text).not.toContain("x/20.txt");
  });
});

describe("owns and ownsViolation in the task spec", () => {
  it("normalises owns and keeps each glob once", () => {
    const spec = validateTaskSpec({ prompt: "p", owns: ["./src/", "src/**", "docs//*.md"] });
    expect(spec.owns).toEqual(["src/**", "docs/*.md"]);
  });

  it("refuses a glob that escapes or is malformed, naming the field", () => {
    expect(() => validateTaskSpec({ prompt: "p", owns: ["src/**", "../etc/**"] })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "owns[1]" }),
    );
    expect(() => validateTaskSpec({ prompt: "p", owns: ["a**b"] })).toThrow(/owns\[0\]: .*glues \*\*/);
    expect(() => validateTaskSpec({ prompt: "p", ownsViolation: "warn" })).toThrow(
      expect.objectContaining({ field: "ownsViolation" }),
    );
  });
});

const mesh = useMesh();
const POOL = "owns-gate";
let origin: string;

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...args], { cwd });
  return r.stdout.trim();
}

beforeAll(async () => {
  origin = await makeTempDir("owns-origin-");
  await git(origin, "init", "--quiet", "-b", "main");
  await writeFile(join(origin, "README.md"), "hello\n");
  await execa("mkdir", ["-p", join(origin, "src"), join(origin, "docs")]);
  await writeFile(join(origin, "src", "a.ts"), "export {};\n");
  await writeFile(join(origin, "docs", "x.md"), "# x\n");
  await writeFile(join(origin, "old.txt"), "old\n");
  await git(origin, "add", "-A");
  await git(origin, "commit", "--quiet", "-m", "first");
  mesh.daemons.push(await startDaemon(mesh.nats.url, { pools: [POOL], slots: 2 }));
});

/** A script that writes `src/new.ts` and, with `outside`, edits docs/x.md (committed by the
 * task itself) and renames old.txt into src/ (its deletion is outside src/**). */
function script(outside: boolean): string {
  const lines = [
    `const fs=require("fs"),cp=require("child_process");`,
    `fs.writeFileSync("src/new.ts","export const n = 1;\\n");`,
  ];
  if (outside) {
    lines.push(
      `fs.writeFileSync("docs/x.md","# changed\\n");`,
      `cp.execFileSync("git",["-c","user.name=T","-c","user.email=t@example.com","commit","-q","-am","docs"]);`,
      `fs.renameSync("old.txt","src/old.txt");`,
    );
  }
  return lines.join("");
}

async function runnerEvents(id: string): Promise<TaskEvent[]> {
  const ac = new AbortController();
  const seen: TaskEvent[] = [];
  for await (const e of mesh.client.api.watchTask(id, ac.signal)) seen.push(e);
  return seen;
}

const violationEvents = (events: TaskEvent[]) =>
  events.filter((e) => e.type === "agent" && e.kind === "owns_violation");

describe("the gate on a real daemon", () => {
  it("lets a command that writes inside owns succeed", async () => {
    const spec = nodeTask(script(false), { pool: POOL, repo: origin, owns: ["src/**"] });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "failed", "dead"]);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.result?.ownsViolations).toBeUndefined();
    expect(violationEvents(await runnerEvents(spec.id))).toEqual([]);
  });

  it("fails a command that writes outside owns, for good, naming the paths", async () => {
    const spec = nodeTask(script(true), { pool: POOL, repo: origin, owns: ["src/**"], maxAttempts: 3 });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "failed", "dead"]);
    expect(done.record.state).toBe("failed");
    // Not retried: another attempt would write the same files.
    expect(done.record.attempts).toHaveLength(1);
    const reason = done.record.attempts[0]?.reason ?? "";
    expect(reason).toBe("changed 2 files outside owns [src/**]: docs/x.md, old.txt");
    expect(done.record.reason).toContain("docs/x.md, old.txt");
    const [ev] = violationEvents(await runnerEvents(spec.id));
    expect(ev).toMatchObject({ data: { policy: "fail", paths: ["docs/x.md", "old.txt"], omitted: 0 } });
  });

  it("reports instead under ownsViolation: report, recording the paths", async () => {
    const spec = nodeTask(script(true), {
      pool: POOL,
      repo: origin,
      owns: ["src/**"],
      ownsViolation: "report",
    });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "failed", "dead"]);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.result?.ownsViolations).toEqual(["docs/x.md", "old.txt"]);
    expect(done.record.result?.headCommit).toMatch(/^[0-9a-f]{40}$/);
    const [ev] = violationEvents(await runnerEvents(spec.id));
    expect(ev).toMatchObject({ data: { policy: "report", paths: ["docs/x.md", "old.txt"] } });
  });

  it("counts the new path of a rename out of owns (the old one counts too: old.txt above)", async () => {
    const spec = nodeTask(`require("fs").renameSync("src/a.ts","lib.ts")`, {
      pool: POOL,
      repo: origin,
      owns: ["src/**"],
      ownsViolation: "report",
    });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "failed", "dead"]);
    expect(done.record.result?.ownsViolations).toEqual(["lib.ts"]);
  });
});

describe("the gate behind the real Claude Code", () => {
  const scripts = new Map<string, MockReply[]>();
  let mock: MockAnthropic;
  const POOL_CLAUDE = "owns-gate-claude";

  beforeAll(async () => {
    mock = await startMockAnthropic({
      script: (ctx) => {
        const id = ctx.workdir ? /\/work\/([^/]+)\/a\d+$/.exec(ctx.workdir)?.[1] : undefined;
        return (id ? scripts.get(id)?.[ctx.turn] : undefined) ?? answer("done");
      },
    });
    const keyFile = join(await makeTempDir("owns-key-"), "anthropic-key");
    await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
    mesh.daemons.push(
      await startDaemon(mesh.nats.url, {
        pools: [POOL_CLAUDE],
        slots: 1,
        runners: ["claude"],
        claude: {
          command: [CLAUDE_BIN],
          env: { ANTHROPIC_BASE_URL: mock.url },
          apiKeyFile: keyFile,
          allowedTools: ["Bash", "Write"],
        },
      }),
    );
  });
  afterAll(async () => {
    await mock?.close();
  });

  it("fails a Claude task whose Bash step wrote outside owns, naming the path", async () => {
    const spec = validateTaskSpec({
      prompt: "Please do the scripted work.",
      repo: origin,
      pool: POOL_CLAUDE,
      owns: ["src/**"],
      maxAttempts: 2,
    });
    // A script inside owns that writes outside it: nothing a write hook could read in the command.
    scripts.set(spec.id, [
      writeFileTool("src/gen.sh", "printf 'generated\\n' > docs/x.md\n"),
      bash("sh src/gen.sh"),
      answer("done"),
    ]);
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "failed", "dead"], 120_000);
    expect(done.record.state, JSON.stringify(done.record.attempts)).toBe("failed");
    expect(done.record.attempts).toHaveLength(1);
    expect(done.record.reason).toBe("changed 1 file outside owns [src/**]: docs/x.md");
    // Claude Code did run the Bash step: the mock saw its (successful) result.
    const afterBash = mock.messages().find((q) => q.conversation?.endsWith(`/${spec.id}/a1`) && q.turn === 2);
    expect(afterBash?.view?.lastToolResult).toMatchObject({ isError: false });
  });
});
