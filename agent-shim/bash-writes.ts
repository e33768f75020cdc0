/**
 * The files a Bash command writes, as far as can be recognised without running it:
 * redirections (`>`, `>>`, `&>`, `>|`, also `cat > f <<EOF`), and the usual writers (`tee`,
 * `cp`, `mv`, `rm`, `touch`, `mkdir`, `ln`, `truncate`, `sed -i`, `dd of=`, `curl -o`,
 * `git checkout -- f`, `git restore`, `git rm`, `git mv`), after `cd` into a literal folder.
 * What cannot be told (variables, command substitution, `bash -c`, `find -exec`, `git reset
 * --hard` ...) is listed in `unknown`: the hook lets it run and the result-time gate decides.
 */

export interface BashTarget {
  /** As written, joined to any literal `cd` before it (relative to the hook's cwd unless absolute). */
  path: string;
  /** What writes it, e.g. `>`, `cp`, `sed -i`. */
  how: string;
  /** `cp`/`mv` into a folder: the names that land inside it when `path` is an existing folder. */
  into?: string[];
  /** `mkdir`: a folder, fine when it leads to a path the task may write. */
  dir?: boolean;
}

export interface BashWrites {
  targets: BashTarget[];
  /** Why some writes could not be told (empty when the whole command was understood). */
  unknown: string[];
}

type Word = { t: "w"; v: string; dyn: boolean; quoted: boolean };
type Op = { t: "op"; v: string };
type Tok = Word | Op;

const SEPARATORS = new Set([";", "&&", "||", "|", "|&", "&", "\n", ";;"]);
const WRITE_REDIRS = new Set([">", ">>", ">|", "&>", "&>>", "<>"]);
const READ_REDIRS = new Set(["<", "<<<", "<&"]);
const IGNORED_TARGETS = /^\/dev\/(null|stdout|stderr|tty|fd\/\d+)$/;

class Unparseable extends Error {}

/** Splits a command line into words and operators; heredoc bodies are skipped. */
export function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  const heredocs: Array<{ delim: string; strip: boolean }> = [];
  let i = 0;
  let cur: Word | undefined;
  const flush = (): void => {
    if (cur) toks.push(cur);
    cur = undefined;
  };
  const word = (): Word => {
    cur ??= { t: "w", v: "", dyn: false, quoted: false };
    return cur;
  };
  const skipHeredocs = (): void => {
    // `i` is just past a newline: each pending heredoc body runs to its delimiter line.
    for (const h of heredocs.splice(0)) {
      for (;;) {
        if (i >= src.length) throw new Unparseable(`heredoc ${h.delim} is not closed`);
        const nl = src.indexOf("\n", i);
        const line = src.slice(i, nl === -1 ? src.length : nl);
        i = nl === -1 ? src.length : nl + 1;
        if ((h.strip ? line.replace(/^\t+/, "") : line) === h.delim) break;
      }
    }
  };
  while (i < src.length) {
    const c = src[i] as string;
    if (c === "\\") {
      if (src[i + 1] === "\n") {
        i += 2;
        continue;
      }
      const w = word();
      w.v += src[i + 1] ?? "";
      w.quoted = true;
      i += 2;
      continue;
    }
    if (c === "'") {
      const end = src.indexOf("'", i + 1);
      if (end === -1) throw new Unparseable("a single quote is not closed");
      const w = word();
      w.v += src.slice(i + 1, end);
      w.quoted = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      const w = word();
      w.quoted = true;
      i++;
      for (;;) {
        if (i >= src.length) throw new Unparseable("a double quote is not closed");
        const d = src[i] as string;
        if (d === '"') break;
        if (d === "\\" && i + 1 < src.length && '"\\$`\n'.includes(src[i + 1] as string)) {
          w.v += src[i + 1];
          i += 2;
          continue;
        }
        if (d === "`" || (d === "$" && src[i + 1] === "(")) throw new Unparseable("command substitution");
        if (d === "$") w.dyn = true;
        w.v += d;
        i++;
      }
      i++;
      continue;
    }
    if (c === "`" || (c === "$" && src[i + 1] === "(")) throw new Unparseable("command substitution");
    if (c === "#" && !cur) {
      while (i < src.length && src[i] !== "\n") i++;
      continue;
    }
    if (c === " " || c === "\t") {
      flush();
      i++;
      continue;
    }
    if (c === "\n") {
      flush();
      toks.push({ t: "op", v: "\n" });
      i++;
      skipHeredocs();
      continue;
    }
    if (c === "(" || c === ")") {
      if (c === "(" && (src[i - 1] === "<" || src[i - 1] === ">"))
        throw new Unparseable("process substitution");
      throw new Unparseable("a subshell or function");
    }
    const three = src.slice(i, i + 3);
    const two = src.slice(i, i + 2);
    let op: string | undefined;
    for (const o of ["&>>", "<<<", "<<-", ";;"]) if (three.startsWith(o)) op ??= o;
    if (!op)
      for (const o of ["&&", "||", "|&", ">>", ">|", "&>", "<<", "<>", ">&", "<&"]) if (two === o) op ??= o;
    if (!op && ";|&<>".includes(c)) op = c;
    if (op) {
      // `2>file`: a number right before a redirection names a descriptor, not a word.
      if (cur && !cur.quoted && /^\d+$/.test(cur.v) && /^[<>]/.test(op)) cur = undefined;
      flush();
      toks.push({ t: "op", v: op });
      i += op.length;
      if (op === "<<" || op === "<<-") {
        while (src[i] === " " || src[i] === "\t") i++;
        const m = /^(['"]?)([A-Za-z0-9_.-]+)\1/.exec(src.slice(i));
        if (!m) throw new Unparseable("a heredoc delimiter it cannot read");
        heredocs.push({ delim: m[2] as string, strip: op === "<<-" });
        toks.push({ t: "w", v: m[2] as string, dyn: false, quoted: true });
        i += m[0].length;
      }
      continue;
    }
    const w = word();
    if (c === "$") w.dyn = true;
    if (!w.quoted && "*?[{~".includes(c) && (c !== "~" || w.v === "")) w.dyn = true;
    w.v += c;
    i++;
  }
  flush();
  if (heredocs.length > 0) throw new Unparseable(`heredoc ${heredocs[0]?.delim} is not closed`);
  return toks;
}

const WRAPPERS = new Set(["sudo", "nohup", "time", "command", "builtin", "exec", "nice", "doas"]);
const OPAQUE = new Map<string, string>([
  ["bash", "a nested shell"],
  ["sh", "a nested shell"],
  ["zsh", "a nested shell"],
  ["dash", "a nested shell"],
  ["eval", "eval"],
  ["source", "a sourced script"],
  [".", "a sourced script"],
  ["xargs", "xargs"],
  ["python", "an inline program"],
  ["python3", "an inline program"],
  ["node", "an inline program"],
  ["perl", "an inline program"],
  ["ruby", "an inline program"],
  ["awk", "an inline program"],
  ["patch", "patch"],
  ["tar", "an archive tool"],
  ["unzip", "an archive tool"],
  ["rsync", "rsync"],
  ["wget", "wget"],
]);
/** Shell words that only lead into the next command. */
const KEYWORDS = new Set(["{", "}", "!", "if", "then", "else", "elif", "fi", "do", "done", "while", "until"]);

interface Cmd {
  words: Word[];
  redirs: Array<{ op: string; target: Word | undefined }>;
}

function splitCommands(toks: Tok[]): Cmd[] {
  const cmds: Cmd[] = [];
  let cur: Cmd = { words: [], redirs: [] };
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i] as Tok;
    if (t.t === "op" && SEPARATORS.has(t.v)) {
      if (cur.words.length || cur.redirs.length) cmds.push(cur);
      cur = { words: [], redirs: [] };
      continue;
    }
    if (t.t === "op") {
      const next = toks[i + 1];
      const target = next && next.t === "w" ? next : undefined;
      if (target) i++;
      cur.redirs.push({ op: t.v, target });
      continue;
    }
    cur.words.push(t);
  }
  if (cur.words.length || cur.redirs.length) cmds.push(cur);
  return cmds;
}

const baseName = (p: string): string => p.replace(/\/+$/, "").split("/").pop() ?? p;

/**
 * Operands of a command: words after options, with the values of `valued` options dropped.
 * `--` ends the options.
 */
function operands(
  words: Word[],
  valued: string[] = [],
): { ops: Word[]; opts: Array<{ o: string; v?: Word }> } {
  const ops: Word[] = [];
  const opts: Array<{ o: string; v?: Word }> = [];
  let ended = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as Word;
    if (!ended && w.v === "--" && !w.quoted) {
      ended = true;
      continue;
    }
    if (!ended && w.v.startsWith("-") && w.v !== "-") {
      if (valued.includes(w.v)) {
        const v = words[i + 1];
        opts.push(v ? { o: w.v, v } : { o: w.v });
        i++;
      } else opts.push({ o: w.v });
      continue;
    }
    ops.push(w);
  }
  return { ops, opts };
}

/** What one simple command writes (after wrappers and assignments are stripped). */
function commandWrites(argv: Word[], add: (w: Word, how: string, extra?: Partial<BashTarget>) => void): void {
  const [head, ...rest] = argv;
  if (!head) return;
  if (head.dyn) throw new Unparseable(`a command named by a variable (${head.v})`);
  const name = baseName(head.v);
  const opaque = OPAQUE.get(name);
  if (opaque) {
    // A plain read-only use (`python3 --version`, `node -v`) is still opaque: it may write anything.
    throw new Unparseable(`${opaque} (${name})`);
  }
  switch (name) {
    case "for":
    case "case":
    case "select":
    case "function":
      throw new Unparseable(`a ${name} construct`);
    case "tee":
      for (const w of operands(rest).ops) add(w, "tee");
      return;
    case "rm":
    case "rmdir":
    case "unlink":
    case "shred":
    case "touch":
      for (const w of operands(rest, name === "touch" ? ["-d", "-r", "-t"] : []).ops) add(w, name);
      return;
    case "truncate":
      for (const w of operands(rest, ["-s", "-r"]).ops) add(w, "truncate");
      return;
    case "mkdir":
      for (const w of operands(rest, ["-m"]).ops) add(w, "mkdir", { dir: true });
      return;
    case "cp":
    case "mv":
    case "install":
    case "ln": {
      const { ops, opts } = operands(rest, ["-t", "-S", "-m", "-o", "-g", "--suffix"]);
      const tdir = opts.find((o) => o.o === "-t")?.v ?? targetDirOption(opts);
      if (name === "mv") for (const w of tdir ? ops : ops.slice(0, -1)) add(w, "mv (source)");
      if (tdir) {
        add(tdir, name, { into: ops.map((w) => baseName(w.v)) });
        return;
      }
      if (ops.length === 1 && name === "ln") {
        add({ ...(ops[0] as Word), v: baseName((ops[0] as Word).v) }, "ln");
        return;
      }
      if (ops.length < 2) return;
      const dst = ops[ops.length - 1] as Word;
      add(dst, name, { into: ops.slice(0, -1).map((w) => baseName(w.v)) });
      return;
    }
    case "sed": {
      const inPlace = rest.some((w) => /^-[a-zA-Z]*i/.test(w.v) || w.v.startsWith("--in-place"));
      if (!inPlace) return;
      const { ops, opts } = operands(rest, ["-e", "-f", "--expression", "--file", "-l"]);
      const hasScript = opts.some((o) => ["-e", "-f", "--expression", "--file"].includes(o.o));
      for (const w of hasScript ? ops : ops.slice(1)) add(w, "sed -i");
      return;
    }
    case "dd":
      for (const w of rest) if (w.v.startsWith("of=")) add({ ...w, v: w.v.slice(3) }, "dd of=");
      return;
    case "curl": {
      const { opts } = operands(rest, ["-o", "--output", "-d", "-H", "-X", "-u", "--data", "-A", "-e"]);
      for (const o of opts) if ((o.o === "-o" || o.o === "--output") && o.v) add(o.v, "curl -o");
      if (opts.some((o) => o.o === "-O" || o.o === "--remote-name")) throw new Unparseable("curl -O");
      return;
    }
    case "find":
      if (rest.some((w) => /^-(exec|execdir|ok|okdir|delete|fprint|fprintf|fls)$/.test(w.v)))
        throw new Unparseable("find with -exec or -delete");
      return;
    case "git":
      gitWrites(rest, add);
      return;
    default:
      return;
  }
}

function targetDirOption(opts: Array<{ o: string; v?: Word }>): Word | undefined {
  const o = opts.find((x) => x.o.startsWith("--target-directory="));
  return o ? { t: "w", v: o.o.slice("--target-directory=".length), dyn: false, quoted: false } : undefined;
}

function gitWrites(args: Word[], add: (w: Word, how: string) => void): void {
  // Global options before the subcommand (`git -C dir ...` moves the cwd: unknown).
  let i = 0;
  while (i < args.length && (args[i] as Word).v.startsWith("-")) {
    const o = (args[i] as Word).v;
    if (o === "-C" || o === "--git-dir" || o === "--work-tree") throw new Unparseable(`git ${o}`);
    i += o === "-c" ? 2 : 1;
  }
  const sub = args[i]?.v;
  const rest = args.slice(i + 1);
  switch (sub) {
    case "checkout": {
      const dd = rest.findIndex((w) => w.v === "--" && !w.quoted);
      if (dd === -1) {
        if (rest.every((w) => w.v.startsWith("-"))) return;
        throw new Unparseable("git checkout without --");
      }
      for (const w of rest.slice(dd + 1)) add(w, "git checkout --");
      return;
    }
    case "restore":
    case "rm":
      for (const w of operands(rest, ["-s", "--source"]).ops) add(w, `git ${sub}`);
      return;
    case "mv":
      for (const w of operands(rest).ops) add(w, "git mv");
      return;
    case "reset":
    case "stash":
    case "merge":
    case "rebase":
    case "pull":
    case "apply":
    case "am":
    case "clean":
    case "switch":
    case "cherry-pick":
    case "revert":
      throw new Unparseable(`git ${sub} may rewrite any file`);
    default:
      return;
  }
}

/** The writes of `command`; never throws. */
export function bashWrites(command: string): BashWrites {
  const targets: BashTarget[] = [];
  const unknown: string[] = [];
  let cmds: Cmd[];
  try {
    cmds = splitCommands(tokenize(command));
  } catch (err) {
    if (err instanceof Unparseable) return { targets, unknown: [err.message] };
    throw err;
  }
  let cwd: string | undefined = "";
  const add = (w: Word | undefined, how: string, extra: Partial<BashTarget> = {}): void => {
    if (!w) return;
    if (w.dyn) {
      unknown.push(`${how} ${w.v}: a target with a variable or pattern`);
      return;
    }
    if (IGNORED_TARGETS.test(w.v)) return;
    if (cwd === undefined && !w.v.startsWith("/")) {
      unknown.push(`${how} ${w.v}: after a cd it cannot follow`);
      return;
    }
    const path = w.v.startsWith("/") || !cwd ? w.v : `${cwd}/${w.v}`;
    targets.push({ path, how, ...extra });
  };
  for (const cmd of cmds) {
    for (const r of cmd.redirs) {
      if (WRITE_REDIRS.has(r.op)) add(r.target, r.op);
      else if (r.op === ">&" && r.target && !/^(\d+|-)$/.test(r.target.v)) add(r.target, ">&");
      else if (!READ_REDIRS.has(r.op) && r.op !== "<<" && r.op !== "<<-" && r.op !== ">&")
        unknown.push(`the operator ${r.op}`);
    }
    let argv = cmd.words;
    for (;;) {
      const h = argv[0];
      if (!h) break;
      if (!h.quoted && /^[A-Za-z_][A-Za-z0-9_]*=/.test(h.v)) argv = argv.slice(1);
      else if (!h.quoted && KEYWORDS.has(h.v)) argv = argv.slice(1);
      else if (WRAPPERS.has(h.v)) argv = argv.slice(1);
      else if (h.v === "env") {
        argv = argv.slice(1);
        while (argv[0] && (argv[0].v.startsWith("-") || /^[A-Za-z_][A-Za-z0-9_]*=/.test(argv[0].v)))
          argv = argv.slice(1);
      } else if (h.v === "timeout") argv = operands(argv.slice(1), ["-s", "-k"]).ops.slice(1);
      else break;
    }
    if (argv[0]?.v === "cd") {
      const to = argv[1];
      if (!to || to.dyn || to.v === "-") cwd = undefined;
      else if (to.v.startsWith("/")) cwd = to.v;
      else if (cwd !== undefined) cwd = cwd ? `${cwd}/${to.v}` : to.v;
      continue;
    }
    try {
      commandWrites(argv, add);
    } catch (err) {
      if (err instanceof Unparseable) unknown.push(err.message);
      else throw err;
    }
  }
  return { targets, unknown };
}
