/** Masks secret values in any text the shim or the daemon writes (protocol lines, events, logs, reasons). */

/** Environment variables whose values are credentials for Claude Code. */
export const CREDENTIAL_ENV = [
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_AUTH_TOKEN",
  "CLAUDE_CODE_OAUTH_TOKEN",
] as const;

/** Names whose values are treated as secrets wherever they appear. */
export const SECRET_NAME_RE = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i;

export type Redactor = (text: string) => string;

/** The text a secret is replaced with. */
export const REDACTED = "[redacted]";

export function makeRedactor(secrets: ReadonlyArray<string | undefined>): Redactor {
  // Short values would mask ordinary words; real keys are long. Longest first, so a secret that
  // contains another is masked whole.
  // A multi-line secret (a PEM key, a JSON credential) reaches events a line at a time: each
  // of its lines is a secret too.
  const whole = secrets.filter((s): s is string => typeof s === "string");
  const lines = whole
    .filter((s) => /[\r\n]/.test(s))
    .flatMap((s) => s.split(/\r?\n|\r/).map((l) => l.trim()));
  const list = [...new Set([...whole, ...lines].filter((s) => s.length >= 8))].sort(
    (a, b) => b.length - a.length,
  );
  if (list.length === 0) return (t) => t;
  return (text) => {
    let out = text;
    for (const s of list) if (out.includes(s)) out = out.split(s).join(REDACTED);
    // A secret in a JSON line is escaped there ("\"", "\\", "\n" ...): mask that form too.
    for (const s of list) {
      const escaped = JSON.stringify(s).slice(1, -1);
      if (escaped !== s && out.includes(escaped)) out = out.split(escaped).join(REDACTED);
    }
    return out;
  };
}

export function credentialValues(env: Readonly<Record<string, string | undefined>>): string[] {
  return CREDENTIAL_ENV.map((k) => env[k]).filter((v): v is string => typeof v === "string");
}

/** The values of every credential and secret-looking variable in `env`. */
export function secretEnvValues(env: Readonly<Record<string, string | undefined>>): string[] {
  const out = credentialValues(env);
  for (const [k, v] of Object.entries(env)) if (v && SECRET_NAME_RE.test(k)) out.push(v);
  return out;
}
