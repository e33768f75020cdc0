/**
 * The one-line join string `mesh invite` prints and `mesh join` reads:
 * `meshjoin1:` + base64url(JSON) with the hub's URLs, its JetStream domain, the sha256 of its
 * CA, and this machine's credentials (an nkey seed for TLS clients, a leaf user and password
 * for `mesh up --leaf`). It is a secret: whoever holds it can join the mesh as that machine.
 */
import { z } from "zod";
import { CliError, EXIT } from "../errors.js";

export const JOIN_PREFIX = "meshjoin1:";

const url = z.string().regex(/^tls:\/\/[^\s/@]+:\d+$/, "expected tls://host:port");

export const joinTokenSchema = z.strictObject({
  /** The machine's name at the hub. */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "1-64 of A-Z a-z 0-9 _ -"),
  urls: z.array(url).min(1).max(16),
  leafUrls: z.array(url).max(16),
  domain: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, "1-32 of A-Z a-z 0-9 _ -"),
  /** sha256 of the hub CA's DER, hex. */
  ca: z.string().regex(/^[0-9a-f]{64}$/, "64 lower-case hex digits (sha256)"),
  /** The machine's nkey user seed. */
  nkey: z.string().regex(/^SU[A-Z2-7]{56}$/, "an nkey user seed (SU...)"),
  leafUser: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/),
  leafPassword: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/),
  /** Replicas for the mesh's streams: 3 on a cluster hub. */
  replicas: z.number().int().min(1).max(5),
});

export type JoinToken = z.infer<typeof joinTokenSchema>;

export function encodeJoinString(t: JoinToken): string {
  return `${JOIN_PREFIX}${Buffer.from(JSON.stringify(t)).toString("base64url")}`;
}

const bad = (why: string, cause?: unknown) =>
  new CliError(
    EXIT.USAGE,
    `join string: ${why}; paste the whole line \`mesh invite <name>\` printed on the hub (it starts with ${JOIN_PREFIX}); nothing was stored`,
    "INVALID_ARGUMENT",
    { field: "join", ...(cause !== undefined ? { cause } : {}) },
  );

/** Parses and checks a join string; every problem is a usage error naming what is wrong. */
export function decodeJoinString(text: string): JoinToken {
  const s = text.trim();
  if (!s.startsWith(JOIN_PREFIX)) {
    throw bad(
      s.startsWith("meshjoin")
        ? "unknown version (this mesh reads meshjoin1:)"
        : "does not start with meshjoin1:",
    );
  }
  const body = s.slice(JOIN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body))
    throw bad("the part after meshjoin1: is not base64url (cut or wrapped?)");
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch (err) {
    throw bad("does not decode to JSON (cut short?)", err);
  }
  const res = joinTokenSchema.safeParse(value);
  if (!res.success) {
    const issue = res.error.issues[0]!;
    const field = issue.path.join(".") || "(root)";
    throw bad(
      issue.code === "unrecognized_keys" ? `unknown field "${issue.keys[0]}"` : `${field}: ${issue.message}`,
    );
  }
  return res.data;
}
