/**
 * The plan document as plans-core reads it (daemon/plans/plan-submit-doc.ts) and the plan
 * record made of it: ids, needs as task ids, order, refusals naming the field, the compact
 * graph. No NATS.
 */
import { describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import {
  buildPlanRecord,
  parsePlanRecord,
  parsePlanSubmitDocument,
  planDependents,
  planNeeds,
  validatePlanSubmit,
} from "../daemon/plans/index.js";

const base = { prompt: "p", runner: "noop" };

function refusal(doc: unknown): { field?: string; message: string } {
  try {
    validatePlanSubmit(doc);
  } catch (err) {
    if (isMeshError(err, "INVALID_ARGUMENT")) return { field: err.field, message: err.message };
    throw err;
  }
  throw new Error("not refused");
}

describe("plan document", () => {
  it("makes task ids <plan>-<name>, needs task ids, defaults applied, every task after its needs", () => {
    const p = parsePlanSubmitDocument(
      `plan: auth\ntitle: T\ndefaults: { runner: noop, pool: x }\ntasks:\n  - { id: d, prompt: p, needs: [b, c] }\n  - { id: b, prompt: p, needs: [a] }\n  - { id: c, prompt: p, needs: [a], pool: y }\n  - { id: a, prompt: p }\n`,
      "plan.yaml",
    );
    expect(p.id).toBe("auth");
    expect(p.title).toBe("T");
    expect(p.tasks.map((t) => [t.id, t.plan, t.needs ?? [], t.pool, t.depth])).toEqual([
      ["auth-d", "auth", ["auth-b", "auth-c"], "x", 0],
      ["auth-b", "auth", ["auth-a"], "x", 0],
      ["auth-c", "auth", ["auth-a"], "y", 0],
      ["auth-a", "auth", [], "x", 0],
    ]);
    expect(p.order.indexOf("auth-a")).toBe(0);
    expect(p.order.at(-1)).toBe("auth-d");
    expect(p.dependents).toEqual({
      "auth-a": ["auth-b", "auth-c"],
      "auth-b": ["auth-d"],
      "auth-c": ["auth-d"],
      "auth-d": [],
    });
    expect(validatePlanSubmit({ tasks: [{ id: "a", ...base }] }).id).toMatch(/^p-[0-9a-z]+-[0-9a-z]{8}$/);
  });

  it("refuses, naming the field: a cycle with its path, an unknown need, a duplicate name, a bad spec", () => {
    const cycle = refusal({
      plan: "c",
      tasks: [
        { id: "a", ...base, needs: ["c"] },
        { id: "b", ...base, needs: ["a"] },
        { id: "c", ...base, needs: ["b"] },
        { id: "free", ...base },
      ],
    });
    expect(cycle.message).toBe(
      "tasks[0].needs: the needs form a cycle: a -> c -> b -> a (each needs the next); drop one of these needs",
    );
    expect(refusal({ plan: "u", tasks: [{ id: "a", ...base, needs: ["zz"] }] })).toEqual({
      field: "tasks[0].needs[0]",
      message: 'tasks[0].needs[0]: "zz" is not a task of this plan; did you mean "a"? (its tasks: a)',
    });
    expect(
      refusal({
        plan: "d",
        tasks: [
          { id: "a", ...base },
          { id: "a", ...base },
        ],
      }).message,
    ).toBe('tasks[1].id: duplicate name "a" (also tasks[0]); give each task its own');
    expect(refusal({ plan: "s", tasks: [{ id: "a", runner: "noop" }] }).field).toBe("tasks[0].prompt");
    expect(refusal({ plan: "n", tasks: [{ ...base }] }).field).toBe("tasks[0].id");
    expect(refusal({ plan: "x", tasks: [{ id: "a", ...base, plan: "other" }] }).field).toBe("tasks[0].plan");
    expect(refusal({ plan: "x", defaults: { needs: ["a"] }, tasks: [{ id: "a", ...base }] }).field).toBe(
      "defaults.needs",
    );
    expect(refusal({ plan: "x", tasks: [], extra: 1 }).field).toBe("extra");
    expect(refusal({ plan: "bad id!", tasks: [{ id: "a", ...base }] }).field).toBe("plan");
  });

  it("the record stores the graph compactly and reads back; an unreadable one is DATA_LOSS", () => {
    const p = validatePlanSubmit({
      plan: "g",
      tasks: [
        { id: "a", ...base },
        { id: "b", ...base, needs: ["a"] },
        { id: "c", ...base, needs: ["a", "b"] },
      ],
    });
    const rec = buildPlanRecord(p, new Date(0), "me@here", "d");
    expect(rec).toMatchObject({ tasks: ["a", "b", "c"], needs: [[], [0], [0, 1]], submitter: "me@here" });
    const back = parsePlanRecord(new TextEncoder().encode(JSON.stringify(rec)), "g");
    expect(planNeeds(back).get("g-c")).toEqual(["g-a", "g-b"]);
    expect(planDependents(back).get("g-a")).toEqual(["g-b", "g-c"]);
    expect(() =>
      parsePlanRecord(new TextEncoder().encode(JSON.stringify({ ...rec, needs: [[7]] })), "g"),
    ).toThrow(expect.objectContaining({ code: "DATA_LOSS" }));
  });
});
