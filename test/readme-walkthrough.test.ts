/**
 * README.md's walkthrough as a new user follows it: a fresh clone of this repository's HEAD,
 * the README's own setup, `npm start` as a terminal runs it (its own process group), then every
 * command of the blocks marked `<!-- walkthrough -->`, exactly as shown, in order, each checked
 * against what the README says it does; then Ctrl-C, and nothing may be left running.
 *
 * The commands are read from README.md, never copied here: a command the README shows that does
 * not work fails this test, and so does a walkthrough command this test has no expectation for
 * (add one below when the README grows a step).
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { symlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir, waitFor } from "./harness/index.js";
import { REPO_ROOT } from "./support/mesh.js";

const run = promisify(execFile);

interface Block {
  marker: string;
  lines: string[];
}

/** The shell blocks of README.md that follow a `<!-- walkthrough... -->` comment. */
function walkthroughBlocks(readme: string): Block[] {
  const blocks: Block[] = [];
  const re = /<!-- walkthrough(?<marker>[^>]*?)\s*-->\s*\n```sh\n(?<body>[\s\S]*?)\n```/g;
  for (const m of readme.matchAll(re)) {
    const marker = (m.groups?.marker ?? "").replace(/^:\s*/, "").split(/\s/)[0] ?? "";
    const lines = (m.groups?.body ?? "").split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
    blocks.push({ marker, lines });
  }
  return blocks;
}

/** The command of a README line without its trailing `# comment` (the way bash reads it). */
const commandOf = (line: string) => line.replace(/\s+#.*$/, "").trim();

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What the README says each walkthrough command does (its trailing comment and the prose). */
const EXPECT: Record<string, (o: Outcome, ctx: { workerId: string }) => void> = {
  "npm run -s mesh -- workers": (o, { workerId }) => {
    expect(o.code).toBe(0);
    expect(o.stdout).toMatch(/^WORKER\s+HOST\s+POOLS/m);
    expect(o.stdout).toMatch(new RegExp(`^${workerId}\\s+\\S+\\s+default\\s`, "m"));
  },
  "npm run -s mesh -- submit examples/command.yaml --wait": (o) => {
    expect(o.code).toBe(0);
    expect(o.stdout).toMatch(/uname-anywhere\s+succeeded/);
    expect(o.stdout).toMatch(/list-worktree\s+succeeded/);
  },
  "npm run -s mesh -- tasks --json": (o) => {
    expect(o.code).toBe(0);
    const tasks = (JSON.parse(o.stdout) as { tasks: Array<{ id: string; state: string }> }).tasks;
    expect(Object.fromEntries(tasks.map((t) => [t.id, t.state]))).toEqual({
      "uname-anywhere": "succeeded",
      "list-worktree": "succeeded",
    });
  },
  "npm run -s mesh -- task uname-anywhere": (o, { workerId }) => {
    expect(o.code).toBe(0);
    expect(o.stdout).toMatch(/^state:\s+succeeded$/m);
    expect(o.stdout).toMatch(new RegExp(`^worker:\\s+${workerId} on `, "m"));
  },
  "npm run -s mesh -- watch uname-anywhere": (o) => {
    expect(o.code).toBe(0);
    expect(o.stdout).toMatch(/stdout\s+\S+/); // the command's output (uname -a)
    expect(o.stdout.trim().split("\n").at(-1)).toMatch(/succeeded/);
  },
  "npm run -s mesh -- submit examples/gpu.yaml --wait --unschedulable-timeout 5s": (o) => {
    expect(o.code).toBe(6);
    expect(o.stderr).toMatch(/needs-gpu .*no live worker serves/);
    expect(o.stdout).toMatch(/needs-gpu\s+queued/);
  },
  "npm run -s mesh -- cancel needs-gpu": (o) => {
    expect(o.code).toBe(0);
    expect(o.stdout).toContain("needs-gpu cancelled");
  },
};

function bash(command: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", command], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Processes whose command line mentions `text` or whose working directory is inside it. */
function processesOf(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // not ours to read
      }
      if (cmd.includes(text) || cwd.startsWith(text)) found.push(`${pid} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

let startPid: number | undefined;
afterEach(() => {
  if (startPid) {
    try {
      process.kill(-startPid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  startPid = undefined;
});

describe("README walkthrough", () => {
  it("runs from a fresh clone exactly as README.md shows it", async () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    const blocks = walkthroughBlocks(readme);
    const setup = blocks.filter((b) => b.marker === "setup");
    const start = blocks.filter((b) => b.marker === "start");
    const steps = blocks.filter((b) => b.marker === "").flatMap((b) => b.lines);
    expect(setup).toHaveLength(1);
    expect(start).toHaveLength(1);
    expect(steps.map(commandOf)).toEqual(Object.keys(EXPECT));

    // A fresh clone of the commit under test.
    const tmp = await makeTempDir("readme-walk-");
    const clone = join(tmp, "agent-mesh");
    const head = (await run("git", ["-C", REPO_ROOT, "rev-parse", "HEAD"])).stdout.trim();
    await run("git", ["clone", "-q", "--no-checkout", REPO_ROOT, clone]);
    await run("git", ["-C", clone, "checkout", "-q", "--detach", head]);

    // The setup block is `git clone ... && cd agent-mesh` (done above) and `npm ci && npm run
    // build`. CI has no time for a second `npm ci` (it needs the registry and takes minutes), so
    // the clone gets this repository's node_modules as a symlink; the build runs as shown.
    const setupLines = setup[0]!.lines.map(commandOf);
    expect(setupLines[0]).toMatch(/^git clone .+ agent-mesh && cd agent-mesh$/);
    expect(setupLines.slice(1)).toEqual(["npm ci && npm run build"]);
    await symlink(join(REPO_ROOT, "node_modules"), join(clone, "node_modules"));
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|MESH_|NATS_)/.test(k))),
      NO_COLOR: "1",
      // Both are documented in README's "The two commands": a state dir and a port of our own.
      MESH_STATE_DIR: join(tmp, "state"),
      MESH_NATS_PORT: "0",
    };
    const build = await bash("npm run build", clone, env);
    expect(build.code, `${build.stdout}\n${build.stderr}`).toBe(0);

    // `npm start` as a terminal runs it: its own process group, Ctrl-C goes to the group.
    const startLine = start[0]!.lines.map(commandOf);
    expect(startLine).toEqual(["npm start"]);
    const npmStart = spawn("bash", ["-c", start[0]!.lines[0]!], {
      cwd: clone,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    startPid = npmStart.pid;
    let out = "";
    let err = "";
    npmStart.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    npmStart.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    const exited = new Promise<number | null>((r) => npmStart.once("exit", (code) => r(code)));
    // README: "It prints a banner ending in `Ctrl-C stops it`".
    await waitFor(() => out.includes("Ctrl-C stops it") || npmStart.exitCode !== null, {
      name: "npm start banner",
      timeoutMs: 90_000,
    });
    expect(npmStart.exitCode, `${out}\n${err}`).toBeNull();
    const workerId = /^ {2}meshd {4}(\S+)/m.exec(out)?.[1];
    expect(workerId, out).toBeTruthy();

    for (const line of steps) {
      const o = await bash(line, clone, env);
      const check = EXPECT[commandOf(line)]!;
      try {
        check(o, { workerId: workerId! });
      } catch (e) {
        throw new Error(`README command failed: ${line}\nexit ${o.code}\nstdout:\n${o.stdout}\nstderr:\n${o.stderr}`, {
          cause: e,
        });
      }
    }

    // The banner's own suggestions work too, as printed (with the state dir they name).
    const tries = out
      .slice(out.indexOf("Try, in another terminal"))
      .split("\n")
      .slice(1)
      .filter((l) => /^ {2}\S/.test(l) && !l.trim().startsWith("("))
      .slice(0, 2);
    expect(tries).toHaveLength(2);
    for (const line of tries) {
      const o = await bash(line.trim(), clone, { ...env, MESH_STATE_DIR: undefined });
      expect({ line, code: o.code, stderr: o.stderr }).toEqual({ line, code: 0, stderr: "" });
    }

    // Ctrl-C stops both, and nothing of the mesh is left.
    process.kill(-npmStart.pid!, "SIGINT");
    expect(await exited).toBe(0);
    startPid = undefined;
    await waitFor(() => processesOf(tmp).length === 0, { name: "no process of the walkthrough left" }).catch(
      () => {
        throw new Error(`left running:\n${processesOf(tmp).join("\n")}`);
      },
    );
    expect(existsSync(join(tmp, "state", "meshd.sock"))).toBe(false);
    // A whole build of the fresh clone runs first: minutes on a loaded 2-core machine.
  }, 300_000);
});
