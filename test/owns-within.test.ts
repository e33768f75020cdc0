import { describe, expect, it } from "vitest";
import { globWithin, ownsOutside } from "../daemon/plans/index.js";

describe("globWithin: what a delegating task may hand on", () => {
  it("accepts the same glob, literal paths it matches, and globs under a <dir>/** parent", () => {
    expect(globWithin("src/api/**", ["src/api/**"])).toBe(true);
    expect(globWithin("src/api/", ["src/api/**"])).toBe(true); // normalised to src/api/**
    expect(globWithin("src/api/users.ts", ["src/api/*.ts"])).toBe(true);
    expect(globWithin("src/api/v2/**", ["src/**"])).toBe(true);
    expect(globWithin("src/api/*.ts", ["src/**"])).toBe(true);
    expect(globWithin("src/a/b/**/*.md", ["src/a/**"])).toBe(true);
  });

  it("refuses what may reach outside, or what it cannot show lies inside", () => {
    expect(globWithin("src/**", ["src/api/**"])).toBe(false);
    expect(globWithin("docs/x.md", ["src/**"])).toBe(false);
    expect(globWithin("src/*/x.ts", ["src/api/**"])).toBe(false);
    expect(globWithin("src/api/*.ts", ["src/api/users.ts"])).toBe(false);
    expect(globWithin("**", ["src/**"])).toBe(false);
    expect(globWithin("src/**", ["src/*/**"])).toBe(false); // conservative: a wildcard parent dir
    expect(globWithin("src", ["src/**"])).toBe(true); // the literal path src is matched by src/**
  });

  it("names the first child glob outside", () => {
    expect(ownsOutside(["src/a/**", "lib/**"], ["src/**"])).toBe("lib/**");
    expect(ownsOutside(["src/a/**"], ["src/**"])).toBeUndefined();
  });
});
