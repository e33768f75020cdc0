/** Masks secret values in any text the shim writes (protocol lines, logs, failure reasons). */

/** Environment variables whose values are credentials for Claude Code. */
export const CREDENTIAL_ENV = [
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_AUTH_TOKEN",
  "CLAUDE_CODE_OAUTH_TOKEN",
] as const;

export type Redactor = (text: string) => string;

export function makeRedactor(secrets: ReadonlyArray<string | undefined>): Redactor {
  // Short values would mask ordinary words; real keys are long.
  const list = [...new Set(secrets.filter((s): s is string => typeof s === "string" && s.length >= 8))];
  if (list.length === 0) return (t) => t;
  return (text) => {
    let out = text;
    for (const s of list) if (out.includes(s)) out = out.split(s).join("[redacted]");
    return out;
  };
}

export function credentialValues(env: Readonly<Record<string, string | undefined>>): string[] {
  return CREDENTIAL_ENV.map((k) => env[k]).filter((v): v is string => typeof v === "string");
}
