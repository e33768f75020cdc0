/**
 * The hub's files without running it: join strings (round trip, and every malformed one
 * refused naming `join`), and the configs `mesh hub init`/`mesh invite` write, checked by
 * nats-server 2.9's own config test (`nats-server -t`) for one node and a 3-node cluster.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { CliError } from "../cli/errors.js";
import { nodeConfigFile } from "../cli/hub/hub-config.js";
import { hubInit, hubInvite } from "../cli/hub/hub-ops.js";
import { readHubState } from "../cli/hub/hub-state.js";
import { decodeJoinString, encodeJoinString, type JoinToken } from "../cli/hub/join-string.js";
import { findNatsServerBinary, makeTempDir, removeTempDirs } from "./harness/index.js";

const run = promisify(execFile);
afterAll(() => removeTempDirs());

const token: JoinToken = {
  name: "box-1",
  urls: ["tls://10.0.0.5:4222"],
  leafUrls: ["tls://10.0.0.5:7422"],
  domain: "hub",
  ca: "a".repeat(64),
  nkey: `SU${"A".repeat(56)}`,
  leafUser: "leaf-box-1",
  leafPassword: "p".repeat(32),
  replicas: 1,
};

function refusal(text: string): CliError {
  try {
    decodeJoinString(text);
  } catch (err) {
    return err as CliError;
  }
  throw new Error(`accepted: ${text}`);
}

describe("join strings", () => {
  it("are one line that decodes to what was encoded", () => {
    const s = encodeJoinString(token);
    expect(s).toMatch(/^meshjoin1:[A-Za-z0-9_-]+$/);
    expect(decodeJoinString(`  ${s}\n`)).toEqual(token);
  });

  it("refuses every malformed string with exit 2, naming join and what is wrong", () => {
    const enc = (v: unknown) => `meshjoin1:${Buffer.from(JSON.stringify(v)).toString("base64url")}`;
    const cases: [string, RegExp][] = [
      ["", /does not start with meshjoin1:/],
      ["meshjoin2:abc", /unknown version/],
      ["meshjoin1:a+b/c", /not base64url/],
      [encodeJoinString(token).slice(0, 40), /does not decode to JSON/],
      [enc({ ...token, ca: "x" }), /ca: .*sha256/],
      [enc({ ...token, urls: ["nats://10.0.0.5:4222"] }), /urls\.0: expected tls:\/\/host:port/],
      [enc({ ...token, nkey: "SA".padEnd(58, "A") }), /nkey: an nkey user seed/],
      [enc({ ...token, extra: 1 }), /unknown field "extra"/],
      [enc({ name: "x" }), /urls/],
    ];
    for (const [text, why] of cases) {
      const e = refusal(text);
      expect(e).toBeInstanceOf(CliError);
      expect(e.exitCode).toBe(2);
      expect(e.field).toBe("join");
      expect(e.message).toMatch(why);
      expect(e.message).toMatch(/nothing was stored/);
    }
  });
});

describe.runIf(findNatsServerBinary())("hub configs", () => {
  it.each([1, 3])(
    "a %i-node hub's configs pass nats-server's config test, with machines invited",
    async (nodes) => {
      const dir = join(await makeTempDir("hub-cfg-"), "hub");
      const hosts = nodes === 1 ? ["hub.example", "10.0.0.5"] : ["nats-1", "nats-2", "nats-3"];
      await hubInit({
        dir,
        cluster: nodes,
        hosts,
        domain: "hub",
        port: 4222,
        leafPort: 7422,
        routePort: 6222,
        force: false,
      });
      const invited = await hubInvite(dir, "box-1");
      await hubInvite(dir, "box-2");
      const t = decodeJoinString(invited.joinString);
      expect(t.urls).toEqual(hosts.map((h) => `tls://${h}:4222`));
      expect(t.replicas).toBe(nodes === 1 ? 1 : 3);
      const s = readHubState(dir);
      expect(s.machines.map((m) => m.name)).toEqual(["box-1", "box-2"]);
      // The hub keeps the machine's public key, never its seed.
      expect(readFileSync(join(dir, "users.conf"), "utf8")).not.toContain(t.nkey);
      for (let n = 1; n <= nodes; n++) {
        const r = await run(findNatsServerBinary()!, ["-t", "-c", nodeConfigFile(dir, n)]).catch(
          (e: { stdout: string; stderr: string }) => e,
        );
        expect(`${r.stdout}${r.stderr}`).toMatch(/configuration file .* is valid/);
      }
    },
  );
});
