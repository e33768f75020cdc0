/**
 * The transfer benchmark's generated repository (bench/repo-gen.ts): the same commits on every
 * run (a cache entry made elsewhere is the same repository), about the asked size, complete
 * only when finished.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { generatedPath, generatedRepo } from "../bench/repo-gen.js";
import { makeTempDir, removeTempDirs } from "./harness/index.js";

afterAll(removeTempDirs);

describe("bench repository generator", () => {
  it("makes the same commits in two places, a pack of about the asked size, and a clean checkout", async () => {
    const o = { sizeMb: 1, files: 120, commits: 12 };
    const [a, b] = await Promise.all([
      generatedRepo(await makeTempDir("gen-a-"), o),
      generatedRepo(await makeTempDir("gen-b-"), o),
    ]);
    expect(a.head).toMatch(/^[0-9a-f]{40}$/);
    expect(b.head).toBe(a.head);
    expect(a.packBytes).toBeGreaterThan(0.7e6);
    expect(a.packBytes).toBeLessThan(1.4e6);
    const log = (await execa("git", ["rev-list", "--count", "HEAD"], { cwd: a.dir })).stdout.trim();
    expect(Number(log)).toBe(o.commits);
    const files = (await execa("git", ["ls-files"], { cwd: a.dir })).stdout.trim().split("\n");
    expect(files).toHaveLength(o.files);
    expect(files).toContain(generatedPath(o.files - 1));
    expect((await execa("git", ["status", "--porcelain"], { cwd: a.dir })).stdout).toBe("");
    expect(existsSync(join(a.dir, ".git", "bench-complete.json"))).toBe(true);
  });

  it("uses a complete cache entry as it is", async () => {
    const root = await makeTempDir("gen-cache-");
    const o = { sizeMb: 1, files: 50, commits: 3 };
    const first = await generatedRepo(root, o);
    // A marker of its own in the cached repository survives the second call: nothing was rebuilt.
    await execa("git", ["update-ref", "refs/bench/probe", first.head], { cwd: first.dir });
    const again = await generatedRepo(root, o);
    expect(again.dir).toBe(first.dir);
    expect((await execa("git", ["rev-parse", "refs/bench/probe"], { cwd: again.dir })).stdout.trim()).toBe(
      first.head,
    );
  });
});
