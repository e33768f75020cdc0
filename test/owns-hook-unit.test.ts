/**
 * The ownership hook's parts without Claude Code: the Bash write recogniser, path resolution
 * (`..`, symlinks, outside the worktree), the verdicts, the hook program as a real child
 * process (fails closed), and the per-task port's protocol over a real unix socket.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { bashWrites } from "../agent-shim/bash-writes.js";
import { OwnsJudge } from "../agent-shim/owns-decide.js";
import { hookCommand } from "../agent-shim/owns-hook-install.js";
import { resolveToolPath } from "../agent-shim/owns-paths.js";
import { askLease, askPort } from "../agent-shim/task-port-client.js";
import { compileOwns } from "../daemon/plans/index.js";
import { leasePath, serveTaskPort } from "../daemon/runner/index.js";
import { REPO_ROOT } from "./mock-anthropic/index.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).map((c) => c()));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "owns-unit-"));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

const paths = (cmd: string) => bashWrites(cmd).targets.map((t) => t.path);

describe("bash write recogniser", () => {
  it.each([
    ["echo hi > a.txt", ["a.txt"]],
    ["echo hi >> logs/a.log 2>&1", ["logs/a.log"]],
    ["make 2> err.txt", ["err.txt"]],
    ["ls &> out.txt", ["out.txt"]],
    ["echo x >| forced.txt", ["forced.txt"]],
    ["echo hi | tee -a one.txt two.txt", ["one.txt", "two.txt"]],
    ["cp -r src/a.ts src/b.ts dst/", ["dst/"]],
    ["mv old.txt new.txt", ["old.txt", "new.txt"]],
    ["rm -rf build dist", ["build", "dist"]],
    ["touch a b", ["a", "b"]],
    ["mkdir -p deep/er", ["deep/er"]],
    ["sed -i 's/a/b/' f.txt", ["f.txt"]],
    ["sed -i.bak -e s/a/b/ g.txt h.txt", ["g.txt", "h.txt"]],
    ["sed 's/a/b/' f.txt", []],
    ["git checkout -- x.ts y.ts", ["x.ts", "y.ts"]],
    ["git restore src/z.ts", ["src/z.ts"]],
    ["git rm -q gone.ts", ["gone.ts"]],
    ["cat > notes.md <<EOF\nhello > not-a-file\nEOF\necho done > d.txt", ["notes.md", "d.txt"]],
    ["cat <<-'X' > q.txt\n\tbody\n\tX", ["q.txt"]],
    ["cd sub && echo hi > x.txt", ["sub/x.txt"]],
    ["FOO=1 sudo tee /etc/hosts < in.txt", ["/etc/hosts"]],
    ["dd if=/dev/zero of=blob.bin bs=1 count=1", ["blob.bin"]],
    ["curl -sS -o page.html https://example.com", ["page.html"]],
    ["ln -s ../target link", ["link"]],
    ["echo 'a > b' \"c > d\" > real.txt", ["real.txt"]],
    ["npm test > /dev/null 2>&1", []],
    ["ls -la; git status", []],
    ["if true; then rm x.txt; fi", ["x.txt"]],
  ])("%j writes %j", (cmd, want) => {
    const w = bashWrites(cmd);
    expect(w.targets.map((t) => t.path)).toEqual(want);
    expect(w.unknown).toEqual([]);
  });

  it.each([
    ["echo hi > $OUT", /variable/],
    ["echo $(date) > x", /command substitution/],
    ["bash -c 'echo > x'", /nested shell/],
    ['python3 -c \'open("x","w")\'', /inline program/],
    ["find . -name '*.o' -delete", /find/],
    ["git reset --hard", /git reset/],
    ["echo 'unclosed", /quote/],
    ["cd $HOME && touch x", /cd/],
    ["for f in a b; do rm $f; done", /for/],
    ["rm *.txt", /pattern/],
  ])("%j is not fully understood (%s)", (cmd, why) => {
    const w = bashWrites(cmd);
    expect(w.unknown.join("; ")).toMatch(why);
  });

  it("keeps what it understood next to what it did not", () => {
    const w = bashWrites("echo a > ok.txt; eval 'x'");
    expect(w.targets.map((t) => t.path)).toEqual(["ok.txt"]);
    expect(w.unknown).toHaveLength(1);
  });

  it("reads mv sources as writes too, and cp into a folder as names inside it", () => {
    expect(paths("mv a.txt b.txt dir")).toEqual(["a.txt", "b.txt", "dir"]);
    expect(bashWrites("cp a.txt b.txt dir").targets[0]?.into).toEqual(["a.txt", "b.txt"]);
  });
});

describe("path resolution", () => {
  it("collapses .., follows symlinks, and tells inside from outside", async () => {
    const d = await tempDir();
    const root = join(d, "wt");
    await mkdir(join(root, "src"), { recursive: true });
    await mkdir(join(d, "outside"));
    await symlink(join(d, "outside"), join(root, "src", "escape"));
    await symlink("../../outside/x.txt", join(root, "src", "dangling"));
    const real = (await import("node:fs")).realpathSync(root);
    const one = (p: string, cwd = real) => resolveToolPath(real, cwd, p);
    expect(one("src/a.ts")).toEqual([{ kind: "inside", rel: "src/a.ts", real: join(real, "src/a.ts") }]);
    expect(one("../../wt/src/a.ts", join(real, "src"))).toMatchObject([{ kind: "inside", rel: "src/a.ts" }]);
    expect(one("../../other/a.ts", join(real, "src"))).toMatchObject([{ kind: "outside" }]);
    expect(one("../a.ts", join(real, "src"))).toMatchObject([{ kind: "inside", rel: "a.ts" }]);
    expect(one("src/../../x")).toMatchObject([{ kind: "outside" }]);
    expect(one("src/escape/f.txt")).toMatchObject([{ kind: "outside", real: join(d, "outside", "f.txt") }]);
    // A symlink to a file that does not exist yet: the write lands at its target.
    expect(one("src/dangling")).toMatchObject([{ kind: "outside" }]);
    // `escape/..` is `outside/..` for the kernel, `src` lexically: both readings are returned.
    const both = one("src/escape/../y.txt");
    expect(both.map((r) => r.kind).sort()).toEqual(["inside", "outside"]);
    expect(one("/etc/passwd")).toMatchObject([{ kind: "outside" }]);
    expect(one("")).toMatchObject([{ kind: "invalid" }]);
  });
});

describe("verdicts", () => {
  async function judge(
    cfg: Partial<ConstructorParameters<typeof OwnsJudge>[0]> = {},
    lease?: (rel: string) => unknown,
  ) {
    const d = await tempDir();
    const wt = join(d, "wt");
    await mkdir(join(wt, "src", "api"), { recursive: true });
    await mkdir(join(d, "elsewhere"));
    await symlink(join(d, "elsewhere"), join(wt, "src", "api", "link"));
    const j = new OwnsJudge(
      {
        v: 1,
        taskId: "t-api",
        attempt: 1,
        worktree: wt,
        owns: ["src/api/**"],
        others: { "t-docs": ["docs/**"] },
        ...cfg,
      },
      lease ? { lease: lease as never } : {},
    );
    const call = (tool_name: string, tool_input: Record<string, unknown>, cwd = wt) =>
      j.decide({ hook_event_name: "PreToolUse", tool_name, tool_input, cwd });
    return { wt, call };
  }

  it("allows writes inside owns and names the owner of the rest", async () => {
    const { wt, call } = await judge();
    expect(await call("Write", { file_path: join(wt, "src/api/a.ts"), content: "" })).toEqual({
      allow: true,
    });
    const denied = await call("Edit", { file_path: "docs/readme.md" });
    expect(denied.allow).toBe(false);
    expect(!denied.allow && denied.reason).toMatch(/docs\/readme\.md is owned by task t-docs/);
    const nobody = await call("MultiEdit", { file_path: "package.json" });
    expect(!nobody.allow && nobody.reason).toMatch(/outside the owns of task t-api \(src\/api\/\*\*\)/);
    expect((await call("NotebookEdit", { notebook_path: "src/api/n.ipynb" })).allow).toBe(true);
  });

  it("refuses a symlink inside owns that leads outside, and resolves ..", async () => {
    const { call } = await judge();
    const d = await call("Write", { file_path: "src/api/link/x.ts" });
    expect(!d.allow && d.reason).toMatch(/outside the task's worktree/);
    expect((await call("Write", { file_path: "src/api/../api/ok.ts" })).allow).toBe(true);
    const up = await call("Write", { file_path: "src/api/../../docs/x.md" });
    expect(!up.allow && up.reason).toMatch(/owned by task t-docs/);
  });

  it("fails closed on malformed input and unknown tools that name a path", async () => {
    const { call } = await judge();
    expect((await call("Write", { content: "no path" })).allow).toBe(false);
    expect((await call("Bash", {})).allow).toBe(false);
    expect((await call("FancyWriter", { path: "x" })).allow).toBe(false);
    expect((await call("Read", {})).allow).toBe(true);
    const { wt } = await judge();
    const j = new OwnsJudge({ v: 1, taskId: "t", attempt: 1, worktree: wt, owns: ["a"], others: {} });
    expect((await j.decide({ tool_name: "Write" })).allow).toBe(false);
    expect((await j.decide("not an object")).allow).toBe(false);
  });

  it("judges Bash by its recognised targets and notes what it could not tell", async () => {
    const { call } = await judge();
    expect((await call("Bash", { command: "echo x > src/api/gen.ts" })).allow).toBe(true);
    const d = await call("Bash", { command: "echo x > docs/a.md" });
    expect(!d.allow && d.reason).toMatch(/> of "docs\/a.md" refused: docs\/a.md is owned by task t-docs/);
    const mk = await call("Bash", { command: "mkdir -p src/api/new && mkdir src" });
    expect(mk.allow).toBe(true);
    const n = await call("Bash", { command: "eval 'echo > anywhere'" });
    expect(n.allow && n.note).toMatch(/could not tell/);
  });

  it("asks for a lease when the task has no owns, naming the holder", async () => {
    const asked: string[] = [];
    const { call } = await judge({ owns: undefined, port: "/nonexistent" }, async (rel: string) => {
      asked.push(rel);
      return rel === "busy.txt"
        ? { granted: false, holder: { taskId: "t-first", attempt: 2, workerId: "w-1" } }
        : { granted: true };
    });
    expect((await call("Write", { file_path: "free.txt" })).allow).toBe(true);
    const d = await call("Bash", { command: "echo > ./busy.txt" });
    expect(!d.allow && d.reason).toMatch(
      /busy\.txt is leased by running task t-first \(attempt 2 on worker w-1\)/,
    );
    expect(asked).toEqual(["free.txt", "busy.txt"]);
  });

  it("uses the one owns implementation (lib) the daemon re-exports", () => {
    expect(compileOwns(["src/api/"])("src/api/x/y.ts")).toBe(true);
    expect(compileOwns(["src/api/"])("src/apix")).toBe(false);
  });
});

const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
function runHook(args: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ["--import", TSX, join(REPO_ROOT, "agent-shim", "owns-hook.ts"), ...args],
      { env: { PATH: process.env.PATH ?? "" } },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

describe("the hook program", () => {
  it("denies with JSON and exit 2 on malformed stdin, an unreadable config, and a bad config", async () => {
    const d = await tempDir();
    const wt = join(d, "wt");
    await mkdir(wt);
    const cfg = join(d, "cfg.json");
    await writeFile(cfg, JSON.stringify({ v: 1, taskId: "t", attempt: 1, worktree: wt, owns: ["a/**"] }));
    const input = JSON.stringify({
      hook_event_name: "PreToolUse",
      tool_name: "Write",
      tool_input: { file_path: "a/x" },
      cwd: wt,
    });

    const ok = await runHook([cfg], input);
    expect(ok).toMatchObject({ code: 0, stdout: "" });

    const bad = await runHook([cfg], "{not json");
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).hookSpecificOutput).toMatchObject({ permissionDecision: "deny" });

    const missing = await runHook([join(d, "nope.json")], input);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/ownership hook failed.*cannot read the hook config/);

    await writeFile(cfg, "{]");
    expect((await runHook([cfg], input)).code).toBe(2);
  });

  it("as Claude Code runs it (through sh): a hook that cannot start or crashes blocks (exit 2), an allow stays 0", async () => {
    const d = await tempDir();
    const wt = join(d, "wt");
    await mkdir(wt);
    const cfg = join(d, "cfg.json");
    await writeFile(cfg, JSON.stringify({ v: 1, taskId: "t", attempt: 1, worktree: wt, owns: ["a/**"] }));
    const input = (file: string) =>
      JSON.stringify({
        hook_event_name: "PreToolUse",
        tool_name: "Write",
        tool_input: { file_path: file },
        cwd: wt,
      });
    const sh = (command: string, stdin: string) =>
      new Promise<number | null>((resolve) => {
        const c = execFile("/bin/sh", ["-c", command], () => undefined);
        c.on("exit", (code) => resolve(code));
        // A hook that exits before reading its input (a missing program) closes the pipe: EPIPE.
        c.stdin?.on("error", () => undefined);
        c.stdin?.end(stdin);
      });
    const hook = join(REPO_ROOT, "dist/agent-shim/owns-hook.js");
    expect(await sh(hookCommand([process.execPath, hook, cfg]), input("a/x"))).toBe(0);
    expect(await sh(hookCommand([process.execPath, hook, cfg]), input("b/x"))).toBe(2);
    // The program is missing (node exits 1), or node itself is: both block.
    expect(await sh(hookCommand([process.execPath, join(d, "gone.js"), cfg]), input("a/x"))).toBe(2);
    expect(await sh(hookCommand([join(d, "no-node"), hook, cfg]), input("a/x"))).toBe(2);
    // A program that crashes before any handler runs.
    const crash = join(d, "crash.js");
    await writeFile(crash, "throw new Error('boom');\n");
    expect(await sh(hookCommand([process.execPath, crash, cfg]), input("a/x"))).toBe(2);
  });
});

describe("the per-task port", () => {
  it("answers lease requests with the token, refuses without it or malformed, and is 0600", async () => {
    const d = await tempDir();
    const port = await serveTaskPort({
      scratchDir: d,
      handlers: {
        lease: async (req) =>
          req.path === "mine.txt"
            ? { ok: true, kind: "lease", granted: true }
            : {
                ok: true,
                kind: "lease",
                granted: false,
                holder: { taskId: "other", attempt: 1, workerId: "w" },
              },
      },
    });
    cleanups.push(() => port.close());
    expect((await stat(port.path)).mode & 0o777).toBe(0o600);
    expect(await askLease(port.path, port.token, "mine.txt", 5_000)).toEqual({ granted: true });
    expect(await askLease(port.path, port.token, "theirs.txt", 5_000)).toMatchObject({
      granted: false,
      holder: { taskId: "other" },
    });
    await expect(askLease(port.path, "x".repeat(32), "mine.txt", 5_000)).rejects.toThrow(/PERMISSION_DENIED/);
    const junk = await askPort(port.path, { v: 1, id: 7, token: port.token, kind: "fly" }, 5_000);
    expect(junk).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT" } });
    await port.close();
    await expect(askLease(port.path, port.token, "mine.txt", 5_000)).rejects.toThrow(/cannot reach/);
  });

  it("takes only paths inside the repository", () => {
    expect(leasePath("./a//b.txt")).toBe("a/b.txt");
    expect(() => leasePath("../x")).toThrow(/path:/);
    expect(() => leasePath("/etc/x")).toThrow(/path:/);
  });
});

describe("mesh watch", () => {
  it("shows a hook denial with its reason (path and owner)", async () => {
    const { taskEventLine } = await import("../cli/events.js");
    const { TaskEvent } = await import("../proto/index.js");
    const reason =
      'mesh: Write of "docs/x.md" refused: docs/x.md is owned by task t-docs; task t-api owns only src/**';
    const e = TaskEvent.fromPartial({
      taskId: "t-api",
      at: "2026-01-01T00:00:00.000Z",
      agent: { kind: "hook_denied", dataJson: JSON.stringify({ tool: "Write", reason }) },
    });
    expect(taskEventLine({ color: false }, e, false)).toContain(`hook_denied (Write): ${reason}`);
  });
});

describe("hook events in the stream", () => {
  it("turns PreToolUse hook_response lines into hook_denied and hook_note events", async () => {
    const { StreamParser } = await import("../agent-shim/index.js");
    const p = new StreamParser();
    const deny = JSON.stringify({
      hookSpecificOutput: {
        hookEventName: "PreToolUse",
        permissionDecision: "deny",
        permissionDecisionReason: "mesh: no",
      },
    });
    const line = (o: Record<string, unknown>) =>
      JSON.stringify({ type: "system", subtype: "hook_response", hook_event: "PreToolUse", ...o });
    expect(p.parseLine(line({ hook_name: "PreToolUse:Write", stdout: deny, exit_code: 2 }))).toEqual([
      { kind: "hook_denied", tool: "Write", reason: "mesh: no" },
    ]);
    expect(
      p.parseLine(
        line({
          hook_name: "PreToolUse:Bash",
          stdout: JSON.stringify({ systemMessage: "mesh: hmm" }),
          exit_code: 0,
        }),
      ),
    ).toEqual([{ kind: "hook_note", tool: "Bash", note: "mesh: hmm" }]);
    expect(p.parseLine(line({ hook_name: "PreToolUse:Bash", stdout: "", exit_code: 0 }))).toEqual([]);
    expect(
      p.parseLine(line({ hook_name: "PreToolUse:Edit", stdout: "", stderr: "plain no", exit_code: 2 })),
    ).toEqual([{ kind: "hook_denied", tool: "Edit", reason: "plain no" }]);
  });
});
