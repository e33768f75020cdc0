/**
 * Which environment variables a task's `env` may set: an allowlist of names (the operator's
 * `taskEnv.allow`, with a default of harmless ones), and a fixed set no operator can open,
 * because each one changes what a child process loads or trusts: the loader, shells, git,
 * language runtimes, TLS trust, proxies, Claude Code's own settings and the daemon's.
 */

/** `NAME` (exact), `PREFIX*` (prefix), or `*` (any name that is not always refused). */
export type EnvPattern = string;

/** What `taskEnv.allow` is when the operator sets nothing. */
export const DEFAULT_TASK_ENV_ALLOW: readonly EnvPattern[] = [
  "TASK_*",
  "APP_*",
  "CI",
  "TZ",
  "LANG",
  "LANGUAGE",
  "LC_*",
  "DEBUG",
  "VERBOSE",
  "LOG_LEVEL",
  "NO_COLOR",
  "FORCE_COLOR",
  "NODE_ENV",
  "RUST_LOG",
  "RUST_BACKTRACE",
];

/** Exact names a task can never set. */
const DENIED_NAMES = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "TMPDIR",
  "TMP",
  "TEMP",
  "IFS",
  "ENV",
  "BASH_ENV",
  "CDPATH",
  "GLOBIGNORE",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "PROMPT_COMMAND",
  "ZDOTDIR",
  "EDITOR",
  "VISUAL",
  "PAGER",
  "BROWSER",
  "GCONV_PATH",
  "LOCPATH",
  "NLSPATH",
  "HOSTALIASES",
  "RESOLV_HOST_CONF",
  "TERMINFO",
  "TERMINFO_DIRS",
  "CLASSPATH",
  "JAVA_TOOL_OPTIONS",
  "_JAVA_OPTIONS",
  "JDK_JAVA_OPTIONS",
  "PERL5LIB",
  "PERL5OPT",
  "PERLLIB",
  "RUBYOPT",
  "RUBYLIB",
  "TCLLIBPATH",
  "LUA_PATH",
  "LUA_CPATH",
  "NODE_OPTIONS",
  "NODE_PATH",
  "NODE_EXTRA_CA_CERTS",
  "NODE_TLS_REJECT_UNAUTHORIZED",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "OPENSSL_CONF",
  "OPENSSL_MODULES",
  "OPENSSL_ENGINES",
  "DISABLE_AUTOUPDATER",
  // Options for the programs that read them: `GOFLAGS=-toolexec=<prog>` makes a pre-approved
  // `go test` run any program, `RUSTFLAGS=-Clinker=<prog>` a `cargo build`, and so on.
  "GOFLAGS",
  "GOENV",
  "GOTOOLCHAIN",
  "MAKEFLAGS",
  "MFLAGS",
  "RUSTFLAGS",
  "RUSTDOCFLAGS",
  "CFLAGS",
  "CXXFLAGS",
  "CPPFLAGS",
  "LDFLAGS",
  "GLIBC_TUNABLES", // read by the dynamic loader
]);

/** Prefixes a task can never set (matched without regard to case where tools read either). */
const DENIED_PREFIXES = [
  "LD_", // the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
  "DYLD_",
  "BASH_FUNC_",
  "GIT_", // GIT_SSH_COMMAND, GIT_CONFIG_*, GIT_DIR, GIT_EXEC_PATH ...
  "SSH_",
  "SSL_", // SSL_CERT_FILE, SSL_CERT_DIR
  "PYTHON", // PYTHONPATH, PYTHONSTARTUP, PYTHONHOME ...
  "NPM_CONFIG_",
  "YARN_",
  "PNPM_",
  "BUN_",
  "DENO_",
  "CARGO_",
  "RUSTC",
  "RUSTUP_",
  "GEM_",
  "BUNDLE_",
  "PIP_",
  "UV_",
  "CLAUDE", // Claude Code's settings and state
  "ANTHROPIC_",
  "OTEL_",
  "MESH_", // the daemon's own (MESH_TASK_ID, MESH_NATS_PASSWORD ...)
  "NATS_",
  "XDG_",
  "DOCKER_",
  "KUBE",
  "AWS_",
  "GOOGLE_",
  "GCLOUD_",
  "CLOUDSDK_",
  "AZURE_",
  "GH_",
  "GITHUB_",
];

/** Names that look like secrets: secrets never travel on the bus. */
const SECRET_RE = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i;

/**
 * Why a task may never set `name` (whatever the operator allows), or undefined. The reason is
 * a phrase that ends a sentence.
 */
export function deniedEnvReason(name: string): string | undefined {
  const upper = name.toUpperCase();
  if (/PROXY$/.test(upper)) return "proxy settings come from the worker, never from a task";
  if (SECRET_RE.test(name)) {
    return "it looks like a secret; secrets never travel on the bus: set it in the worker's environment (and `passEnv`) instead";
  }
  if (DENIED_NAMES.has(upper) || DENIED_PREFIXES.some((p) => upper.startsWith(p))) {
    return "it changes what the worker's programs load, trust or run, so a task can never set it";
  }
  return undefined;
}

export function matchesEnvPattern(name: string, pattern: EnvPattern): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}

/** `taskEnv.allow` entries: a name, a prefix ending in `*`, or `*`. */
export const ENV_PATTERN_RE = /^(\*|[A-Za-z_][A-Za-z0-9_]*\*?)$/;

/** Why the operator's `taskEnv.allow` entry cannot stand, or undefined. */
export function envPatternProblem(pattern: EnvPattern): string | undefined {
  if (!ENV_PATTERN_RE.test(pattern)) return `"${pattern}" is not a NAME, a PREFIX* or *`;
  // A prefix is judged by a name it would match: `LD_*` can only ever match refused names.
  const sample = pattern.endsWith("*") ? `${pattern.slice(0, -1)}X` : pattern;
  const denied = pattern === "*" ? undefined : deniedEnvReason(sample);
  if (denied) return `"${pattern}" can never come from a task (${denied})`;
  return undefined;
}

/** Why a task may not set `name` on a worker that allows `allow`, or undefined. */
export function envRefusal(name: string, allow: readonly EnvPattern[]): string | undefined {
  const denied = deniedEnvReason(name);
  if (denied) return `"${name}" is refused: ${denied}`;
  if (!allow.some((p) => matchesEnvPattern(name, p))) {
    return `"${name}" is not an allowed task variable on this worker (allowed: ${allow.join(", ") || "none"}); rename it (e.g. TASK_${name}) or ask the operator to add it to taskEnv.allow`;
  }
  return undefined;
}
