/**
 * The spec, record and CLI rules around repos shipped through the mesh (no NATS needed): what a
 * `mesh://` repo must look like, the record's bundle fields, and what `mesh submit` refuses
 * before it ships anything.
 */
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { newTaskRecord, recordProblem } from "../daemon/tasks/record.js";
import { parseRepo } from "../daemon/tasks/repo-syntax.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";

const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const ROOT_ID = "a".repeat(40);
const COMMIT = "b".repeat(40);

function refused(fn: () => unknown): { field?: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isMeshError(err, "INVALID_ARGUMENT"))
      return { message: err.message, ...(err.field ? { field: err.field } : {}) };
    throw err;
  }
  throw new Error("not refused");
}

describe("mesh:// repos", () => {
  it("parse to the repo id and never to a path or URL git would see", () => {
    expect(parseRepo(`mesh://${ROOT_ID}`)).toMatchObject({ meshRepoId: ROOT_ID, key: `mesh:${ROOT_ID}` });
    expect(refused(() => parseRepo("mesh://not-hex")).field).toBe("repo");
    expect(refused(() => parseRepo("mesh:/x")).field).toBe("repo");
  });

  it("need a full commit as ref and no push", () => {
    const base = { prompt: "p", repo: `mesh://${ROOT_ID}` };
    expect(validateTaskSpec({ ...base, ref: COMMIT }).ref).toBe(COMMIT);
    expect(refused(() => validateTaskSpec({ ...base, ref: "main" })).field).toBe("ref");
    expect(refused(() => validateTaskSpec(base)).field).toBe("ref");
    expect(refused(() => validateTaskSpec({ ...base, ref: COMMIT, push: true })).field).toBe("push");
  });

  it("a relative repo reaching the daemon is refused, naming what mesh submit does with it", () => {
    const r = refused(() => validateTaskSpec({ prompt: "p", repo: "." }));
    expect(r.field).toBe("repo");
    expect(r.message).toContain("mesh submit");
  });
});

describe("bundle fields of the record", () => {
  const bundle = { name: "c".repeat(64), repoId: ROOT_ID, base: COMMIT, head: "d".repeat(40), size: 10 };
  const record = () => {
    const r = newTaskRecord(validateTaskSpec({ id: "t1", prompt: "p" }), new Date());
    r.attempts = [{ attempt: 1, workerId: "w", host: "h", claimedAt: r.submittedAt }];
    return r;
  };

  it("are read when well formed (name optional) and named when not", () => {
    const ok = record();
    ok.attempts[0]!.bundle = bundle;
    ok.result = { bundle: { ...bundle, name: undefined } };
    expect(recordProblem(JSON.parse(JSON.stringify(ok)))).toBeUndefined();
    const bad = record();
    (bad.attempts[0] as unknown as Record<string, unknown>).bundle = { ...bundle, head: "HEAD" };
    expect(recordProblem(bad)).toContain("attempts[0].bundle");
    const badResult = record();
    badResult.result = { bundle: { ...bundle, size: -1 } };
    expect(recordProblem(badResult)).toContain("result.bundle");
  });
});

describe("mesh submit, before anything is shipped", () => {
  const submit = (doc: string, ...flags: string[]) =>
    execa(process.execPath, [CLI, "submit", "-", "--json", ...flags], {
      input: doc,
      reject: false,
      // No daemon there: these are refused before the CLI would connect.
      env: { MESH_DAEMON: "/nonexistent/meshd.sock", NO_COLOR: "1" },
    });

  it("refuses dirty: on a repo that is not this machine's, and --fetch without --wait", async () => {
    const r = await submit(JSON.stringify({ prompt: "p", repo: "https://example.com/x.git", dirty: true }));
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(String(r.stderr)).error).toMatchObject({ code: "INVALID_ARGUMENT", field: "dirty" });
    const f = await submit(JSON.stringify({ prompt: "p" }), "--fetch");
    expect(f.exitCode).toBe(2);
    expect(JSON.parse(String(f.stderr)).error.field).toBe("--fetch");
  });

  it("checks the rest of a repo: . task before shipping it", async () => {
    const r = await submit(JSON.stringify({ prompt: "p", repo: ".", timeout: "forever" }));
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(String(r.stderr)).error.field).toBe("timeout");
  });
});
