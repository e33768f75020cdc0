/** Secret masking: the redactor, and the secret values a daemon knows of. */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeRedactor, secretEnvValues } from "../agent-shim/index.js";
import { compileConfig } from "../daemon/config.js";
import { daemonSecrets } from "../daemon/secrets.js";
import { makeTempDir } from "./harness/index.js";

describe("secret masking", () => {
  it("masks each secret, also inside a JSON line where it is escaped, and leaves short values alone", () => {
    const secret = 'pa"ss\\word-0123';
    const redact = makeRedactor([secret, "short", undefined, 'pa"ss\\word-0123-and-more']);
    expect(redact(`x ${secret} y`)).toBe("x [redacted] y");
    expect(redact(JSON.stringify({ line: `got ${secret}` }))).toBe('{"line":"got [redacted]"}');
    expect(redact(`${secret}-and-more`)).toBe("[redacted]"); // the longer secret first
    expect(redact("short words stay")).toBe("short words stay");
  });

  it("knows the daemon's NATS secrets, token files, API key and secret-looking variables", async () => {
    const dir = await makeTempDir("secrets-");
    const keyFile = join(dir, "key");
    await writeFile(keyFile, "sk-from-a-file-0123456789\n");
    const config = compileConfig({
      nats: { user: "u", password: "nats-password-123", token: "nats-token-4567890" },
      claude: { apiKeyFile: keyFile },
    });
    const env = {
      ANTHROPIC_API_KEY: "sk-env-key-abcdefgh",
      AWS_SECRET_ACCESS_KEY: "aws-abcdefghij",
      PATH: "/usr/bin:/bin",
    };
    const values = daemonSecrets(config, env);
    for (const v of [
      "nats-password-123",
      "nats-token-4567890",
      "sk-from-a-file-0123456789",
      "sk-env-key-abcdefgh",
      "aws-abcdefghij",
    ]) {
      expect(values).toContain(v);
    }
    expect(values).not.toContain("/usr/bin:/bin");
    expect(secretEnvValues({ GITHUB_TOKEN: "ghp_x", HOME: "/root" })).toEqual(["ghp_x"]);
  });
});
