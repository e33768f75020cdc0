/**
 * Plan documents (issue 14 §1): parsed and checked whole before anything is written. Each
 * refusal is a MeshError INVALID_ARGUMENT naming the field, with a message that shows the
 * problem: a cycle with its path, an unknown dependency, duplicate names, concurrent tasks whose
 * owns overlap (both names and a path), escaping or malformed globs, linked tasks on different
 * repos. An overlap between tasks ordered by needs passes. A 5,000-task plan validates.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compileOwns,
  normaliseGlob,
  ownsOverlap,
  parsePlan,
  parsePlanDocument,
  planTaskId,
  validatePlan,
} from "../daemon/plans/index.js";

type T = Record<string, unknown>;
const task = (id: string, extra: T = {}): T => ({ id, prompt: `do ${id}`, ...extra });
const plan = (tasks: T[], extra: T = {}): T => ({ plan: "pl", tasks, ...extra });

/** The refusal of `input`: asserts INVALID_ARGUMENT with a field and returns it. */
function refusal(input: unknown): { field: string; message: string } {
  let err: unknown;
  try {
    validatePlan(input);
  } catch (e) {
    err = e;
  }
  expect(err, "the plan should be refused").toMatchObject({ name: "MeshError", code: "INVALID_ARGUMENT" });
  const { field, message } = err as { field: string; message: string };
  expect(typeof field).toBe("string");
  expect(message.startsWith(`${field}: `)).toBe(true);
  return { field, message };
}

describe("a valid plan", () => {
  it("gets full task ids, needs as task ids, defaults, an order and dependents", () => {
    const p = validatePlan({
      plan: "auth",
      title: "Rework auth",
      defaults: { repo: "/src/repo", pool: "gpu", runner: "noop" },
      tasks: [
        task("api", { needs: ["schema"], owns: ["src/api/"] }),
        task("schema", { owns: ["./db//**"] }),
        task("ui", { needs: ["schema"], owns: ["src/ui/**"], pool: "web" }),
        task("docs", { needs: ["api", "ui", "api"], dependencyFailure: "wait" }),
      ],
    });
    expect(p.id).toBe("auth");
    expect(p.title).toBe("Rework auth");
    expect(p.tasks.map((t) => t.id)).toEqual(["auth-api", "auth-schema", "auth-ui", "auth-docs"]);
    expect(p.tasks[0]).toMatchObject({
      plan: "auth",
      needs: ["auth-schema"],
      owns: ["src/api/**"],
      repo: "/src/repo",
      pool: "gpu",
      runner: "noop",
    });
    expect(p.tasks[1]?.owns).toEqual(["db/**"]);
    expect(p.tasks[2]?.pool).toBe("web");
    expect(p.tasks[3]).toMatchObject({ needs: ["auth-api", "auth-ui"], dependencyFailure: "wait" });
    expect(p.order).toEqual(["auth-schema", "auth-api", "auth-ui", "auth-docs"]);
    expect(p.dependents).toEqual({
      "auth-api": ["auth-docs"],
      "auth-schema": ["auth-api", "auth-ui"],
      "auth-ui": ["auth-docs"],
      "auth-docs": [],
    });
    expect(planTaskId("auth", "api")).toBe("auth-api");
  });

  it("generates a plan id when the document has none", () => {
    const p = validatePlan({ tasks: [task("a")] });
    expect(p.id).toMatch(/^p-[a-z0-9]+-[a-z0-9]{8}$/);
    expect(p.tasks[0]?.id).toBe(`${p.id}-a`);
  });

  it("parses YAML", () => {
    const p = parsePlan(
      [
        "plan: y",
        "tasks:",
        "  - id: schema",
        "    prompt: s",
        "  - id: api",
        "    prompt: a",
        "    needs: [schema]",
      ].join("\n"),
    );
    expect(p.tasks.map((t) => [t.id, t.needs])).toEqual([
      ["y-schema", []],
      ["y-api", ["y-schema"]],
    ]);
  });

  it("parses JSON, refusing a duplicate key", () => {
    const p = parsePlan(JSON.stringify({ plan: "j", tasks: [task("a"), task("b", { needs: ["a"] })] }));
    expect(p.order).toEqual(["j-a", "j-b"]);
    expect(() =>
      parsePlanDocument('{"plan": "j", "tasks": [{"id": "a", "prompt": "x", "id": "b"}]}', "plan.json"),
    ).toThrow(/^plan.json: not valid YAML\/JSON at line 1, column 52: duplicate key "id"/);
    expect(parsePlanDocument('{"a": {"k": 1}, "b": {"k": "\\"k\\""}}')).toEqual({
      a: { k: 1 },
      b: { k: '"k"' },
    });
  });

  it("passes an overlap between tasks one of which needs the other (also through others)", () => {
    const p = validatePlan(
      plan([
        task("a", { owns: ["src/**"] }),
        task("b", { needs: ["a"], owns: ["docs/**"] }),
        task("c", { needs: ["b"], owns: ["src/api/*.ts"] }),
      ]),
    );
    expect(p.tasks).toHaveLength(3);
  });

  it("passes concurrent tasks whose owns cannot meet", () => {
    validatePlan(
      plan([
        task("a", { owns: ["src/a*", "docs/**/*.md"] }),
        task("b", { owns: ["src/b*", "src/b/**/*.ts"] }),
        task("c", { owns: ["db/{x,y}/**"] }),
        task("d", { owns: ["db/z/**"] }),
        task("e"), // no owns: it takes leases at run time
      ]),
    );
  });
});

describe("refusals", () => {
  it("a cycle, with its path", () => {
    const r = refusal(
      plan([
        task("a", { needs: ["c"] }),
        task("b", { needs: ["a"] }),
        task("c", { needs: ["b"] }),
        task("d"),
      ]),
    );
    expect(r.message).toContain("the needs form a cycle: a -> c -> b -> a (each needs the next)");
    expect(r.field).toBe("tasks[0].needs");
  });

  it("a task that needs itself", () => {
    expect(refusal(plan([task("a", { needs: ["a"] })])).message).toContain("cycle: a -> a");
  });

  it("a cycle behind a task that is not in it", () => {
    const r = refusal(
      plan([task("x", { needs: ["a"] }), task("a", { needs: ["b"] }), task("b", { needs: ["a"] })]),
    );
    expect(r.message).toContain("cycle: a -> b -> a");
  });

  it("an unknown dependency, naming it, a near name and the known ones", () => {
    const r = refusal(plan([task("schema"), task("api", { needs: ["shema"] })]));
    expect(r.field).toBe("tasks[1].needs[0]");
    expect(r.message).toBe(
      'tasks[1].needs[0]: "shema" is not a task of this plan; did you mean "schema"? (its tasks: schema, api)',
    );
  });

  it("an unknown dependency in a large plan does not list every task", () => {
    const tasks = Array.from({ length: 30 }, (_, i) => task(`t${i}`));
    tasks.push(task("z", { needs: ["nope"] }));
    const r = refusal(plan(tasks));
    expect(r.message).toContain('"nope" is not a task of this plan (it has 31 tasks');
  });

  it("duplicate names", () => {
    const r = refusal(plan([task("a"), task("b"), task("a")]));
    expect(r).toEqual({
      field: "tasks[2].id",
      message: 'tasks[2].id: duplicate name "a" (also tasks[0]); give each task its own',
    });
  });

  it("two concurrent tasks whose owns overlap: both names, both globs and a path both own", () => {
    const r = refusal(
      plan([
        task("schema", { owns: ["db/**"] }),
        task("api", { needs: ["schema"], owns: ["src/api/**", "src/shared/**"] }),
        task("ui", { needs: ["schema"], owns: ["src/ui/**", "src/*/types.ts"] }),
      ]),
    );
    expect(r.field).toBe("tasks[2].owns");
    expect(r.message).toMatch(
      /"api" \(src\/(api|shared)\/\*\*\) and "ui" \(src\/\*\/types\.ts\) may run at the same time/,
    );
    const example = /paths such as "([^"]+)"/.exec(r.message)?.[1];
    expect(example).toBeDefined();
    expect(compileOwns(["src/*/types.ts"])(example!)).toBe(true);
    expect(compileOwns(["src/api/**", "src/shared/**"])(example!)).toBe(true);
    expect(r.message).toContain("make one need the other");
  });

  it("an overlap found on the glob language, not on files", () => {
    const r = refusal(plan([task("a", { owns: ["**/*.md"] }), task("b", { owns: ["docs/{guide,api}/**"] })]));
    expect(r.message).toContain('paths such as "docs/guide/a.md"');
  });

  it("a glob that escapes the repository: the glob, its task and why", () => {
    const r = refusal(
      plan([task("a", { owns: ["src/**"] }), task("b", { owns: ["docs/**", "../secrets/*"] })]),
    );
    expect(r.field).toBe("tasks[1].owns[1]");
    expect(r.message).toBe(
      'tasks[1].owns[1]: "../secrets/*" holds "..": owns cannot reach outside the repository',
    );
    expect(refusal(plan([task("a", { owns: ["/etc/**"] })])).message).toContain('"/etc/**" is absolute');
  });

  it("a malformed glob", () => {
    expect(refusal(plan([task("a", { owns: ["src/{a,b"] })])).message).toBe(
      'tasks[0].owns[0]: "src/{a,b" has a "{" without its "}"',
    );
    expect(refusal(plan([task("a", { owns: ["src**"] })])).field).toBe("tasks[0].owns[0]");
  });

  it("a dependent on another repo than its dependency", () => {
    const r = refusal(
      plan([
        task("a", { repo: "/r/one", runner: "noop" }),
        task("b", { repo: "/r/two", runner: "noop", needs: ["a"] }),
      ]),
    );
    expect(r.field).toBe("tasks[1].repo");
    expect(r.message).toContain('"b" works on repo "/r/two" but needs "a", which works on repo "/r/one"');
    expect(refusal(plan([task("a", { repo: "/r/one" }), task("b", { needs: ["a"] })])).message).toContain(
      '"b" works on no repo',
    );
  });

  it("a bad field of a task, with its path in the plan", () => {
    expect(refusal(plan([task("a"), task("b", { timeout: "soon" })])).field).toBe("tasks[1].timeout");
    expect(refusal(plan([task("a", { promt: "x" })])).message).toContain(
      'tasks[0].promt: unknown field "promt"',
    );
  });

  it("fields of the plan's own", () => {
    expect(refusal(plan([task("a")], { owner: "me" })).message).toContain('unknown field "owner"');
    expect(refusal(plan([task("a")], { plan: "bad id!" })).field).toBe("plan");
    expect(refusal(plan([task("a")], { defaults: { owns: ["**"] } })).field).toBe("defaults.owns");
    expect(refusal(plan([task("a")], { defaults: { needs: ["a"] } })).field).toBe("defaults.needs");
    expect(refusal(plan([task("a", { plan: "x" })])).field).toBe("tasks[0].plan");
    expect(refusal(plan([{ prompt: "no name" }])).message).toContain("tasks[0].id: is required in a plan");
    expect(refusal(plan([task("a", { needs: "b" })])).field).toBe("tasks[0].needs");
    expect(refusal(plan([task("a", { dependencyFailure: "retry" })])).field).toBe(
      "tasks[0].dependencyFailure",
    );
    expect(refusal(plan([])).field).toBe("tasks");
    expect(refusal({ plan: "x" }).field).toBe("tasks");
    expect(refusal([task("a")]).field).toBe("(root)");
    expect(refusal(plan([task("n".repeat(64))], { plan: "p".repeat(64) })).message).toContain(
      "longer than 128 characters",
    );
  });

  it("a document that is not one plan", () => {
    expect(() => parsePlanDocument("tasks: [\n  {id: a", "plan.yaml")).toThrow(
      /^plan.yaml: not valid YAML\/JSON at/,
    );
    expect(() => parsePlanDocument("tasks: []\n---\ntasks: []\n", "plan.yaml")).toThrow(
      /more than one document/,
    );
    expect(() => parsePlanDocument("", "plan.yaml")).toThrow(/holds no plan/);
  });
});

describe("the concurrent-owns check", () => {
  const glob = fc
    .array(fc.constantFrom("a", "b", "*", "**", "a*", "*b", "{a,b}", "[ab]", "x.md", "?"), {
      minLength: 1,
      maxLength: 3,
    })
    .map((s) => s.join("/"));
  it("refuses exactly when two tasks that may run at the same time have overlapping owns", () => {
    const plans = fc
      .array(fc.tuple(fc.array(glob, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 2 })), {
        minLength: 2,
        maxLength: 7,
      })
      // Each task needs some earlier ones (a DAG by construction).
      .map((rows) =>
        rows.map(([owns, picks], i) => ({ owns, needs: i === 0 ? [] : picks.map((p) => p % i) })),
      );
    fc.assert(
      fc.property(plans, (rows) => {
        const norm = rows.map((r) => r.owns.map((g) => normaliseGlob(g)));
        // Who needs whom, by brute force.
        const reaches = (from: number, to: number): boolean =>
          rows[from]!.needs.some((d) => d === to || reaches(d, to));
        let brute = false;
        for (let i = 0; i < rows.length; i++) {
          for (let j = 0; j < i; j++) {
            if (!reaches(i, j) && !reaches(j, i) && ownsOverlap(norm[i]!, norm[j]!)) brute = true;
          }
        }
        let refused = false;
        try {
          validatePlan(
            plan(rows.map((r, i) => task(`t${i}`, { owns: r.owns, needs: r.needs.map((d) => `t${d}`) }))),
          );
        } catch (e) {
          expect((e as Error).message).toContain("may run at the same time");
          refused = true;
        }
        expect(refused).toBe(brute);
      }),
      { numRuns: 1500 },
    );
  });
});

describe("scale", () => {
  it("validates a 5,000-task plan", () => {
    // 50 layers of 100: each task needs two of the layer before; owns of its own, plus a shared
    // file that only tasks ordered by needs touch (one column's chain).
    const tasks: T[] = [];
    for (let layer = 0; layer < 50; layer++) {
      for (let k = 0; k < 100; k++) {
        const needs = layer === 0 ? [] : [`l${layer - 1}-${k}`, `l${layer - 1}-${(k + 1) % 100}`];
        tasks.push(
          task(`l${layer}-${k}`, {
            needs,
            repo: "/r",
            runner: "noop",
            owns: [`pkg/m${layer}x${k}/**`, `gen/*-${layer}-${k}.txt`, `cols/c${k}.md`],
          }),
        );
      }
    }
    // JSON: what a program writes (YAML of this size takes seconds to read; see parsePlanDocument).
    const text = JSON.stringify({ plan: "big", tasks });
    const t0 = performance.now();
    const p = parsePlan(text);
    const ms = performance.now() - t0;
    console.log(`5,000-task plan: parsed and validated in ${ms.toFixed(0)} ms`);
    expect(p.tasks).toHaveLength(5000);
    expect(p.order[0]).toBe("big-l0-0");
    expect(p.dependents["big-l0-1"]).toEqual(["big-l1-0", "big-l1-1"]);
  });
});
