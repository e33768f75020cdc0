/**
 * A generated repository for the transfer benchmark, the same bytes on every run: `files` files
 * in 60 folders, a first commit with most of the content, then `commits - 1` commits that each
 * append to a few files. Content is base64 text from a fixed-key AES-CTR stream (so it
 * compresses like source code rarely does: the pack is about `sizeMb` MB). Made with
 * `git fast-import` (fixed dates: the same commit ids every time), repacked once, checked out,
 * and cached under bench/.cache/ (not committed); a cache entry is used only when complete.
 */
import { createCipheriv } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";

export interface GeneratedRepo {
  /** A non-bare repository with a work tree (copy it before changing it). */
  dir: string;
  files: number;
  commits: number;
  /** Size of its one pack file. */
  packBytes: number;
  head: string;
}

const VERSION = 1;
/** base64 of random bytes deflates to about this fraction. */
const DEFLATED = 0.76;

/** A deterministic byte stream. */
function stream(): (n: number) => Buffer {
  const c = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  return (n) => c.update(Buffer.alloc(n));
}

function lines(bytes: Buffer): string {
  const b64 = bytes.toString("base64");
  let out = "";
  for (let i = 0; i < b64.length; i += 76) out += `${b64.slice(i, i + 76)}\n`;
  return out;
}

export const generatedPath = (i: number): string => `src/m${i % 60}/f${i}.txt`;

export async function generatedRepo(
  cacheRoot: string,
  o: { sizeMb: number; files: number; commits: number },
): Promise<GeneratedRepo> {
  const key = `repo-v${VERSION}-${o.sizeMb}mb-${o.files}f-${o.commits}c`;
  const dir = join(cacheRoot, key);
  const marker = join(dir, ".git", "bench-complete.json");
  if (!existsSync(marker)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(cacheRoot, { recursive: true });
    process.stderr.write(`transfer: generating a ${o.sizeMb} MB repository in ${tmp} (once; cached)...\n`);
    await build(tmp, o);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  }
  const packDir = join(dir, ".git", "objects", "pack");
  const packs = (await readdir(packDir)).filter((f) => f.endsWith(".pack"));
  let packBytes = 0;
  for (const p of packs) packBytes += (await stat(join(packDir, p))).size;
  const head = (await execa("git", ["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
  return { dir, files: o.files, commits: o.commits, packBytes, head };
}

async function build(dir: string, o: { sizeMb: number; files: number; commits: number }): Promise<void> {
  await execa("git", ["init", "--quiet", "-b", "main", dir]);
  const raw = (o.sizeMb * 1e6) / DEFLATED;
  // Base64 is 4/3 of its bytes: draw 3/4 of the text size.
  const firstPerFile = Math.max(64, Math.round(((0.7 * raw) / o.files) * 0.75));
  const perChange = Math.max(48, Math.round(((0.3 * raw) / Math.max(1, (o.commits - 1) * 4)) * 0.75));
  const next = stream();
  const fi = execa("git", ["fast-import", "--quiet", "--done"], { cwd: dir, stdin: "pipe" });
  const sizes = new Array<number>(o.files).fill(0);
  const content: string[] = [];
  const write = async (s: string) => {
    if (!fi.stdin!.write(s)) await new Promise((r) => fi.stdin!.once("drain", r));
  };
  let pick = 12345;
  for (let c = 0; c < o.commits; c++) {
    const when = 1_700_000_000 + c * 600;
    const msg = c === 0 ? "initial import\n" : `change ${c}\n`;
    let cmd =
      `commit refs/heads/main\nauthor bench <bench@localhost> ${when} +0000\n` +
      `committer bench <bench@localhost> ${when} +0000\ndata ${Buffer.byteLength(msg)}\n${msg}`;
    const touched: number[] = [];
    if (c === 0) for (let i = 0; i < o.files; i++) touched.push(i);
    else {
      for (let k = 0; k < 4; k++) {
        pick = (pick * 1103515245 + 12345) % 2 ** 31;
        touched.push(pick % o.files);
      }
    }
    await write(cmd);
    cmd = "";
    for (const i of new Set(touched)) {
      content[i] = (content[i] ?? "") + lines(next(c === 0 ? firstPerFile : perChange));
      sizes[i] = Buffer.byteLength(content[i]!);
      await write(`M 100644 inline ${generatedPath(i)}\ndata ${sizes[i]}\n${content[i]}\n`);
    }
  }
  await write("done\n");
  fi.stdin!.end();
  await fi;
  await execa("git", ["repack", "-a", "-d", "-f", "-q", "--window=10", "--depth=50"], { cwd: dir });
  await execa("git", ["reset", "--hard", "--quiet"], { cwd: dir });
  const head = (await execa("git", ["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
  await writeFile(join(dir, ".git", "bench-complete.json"), `${JSON.stringify({ ...o, head })}\n`);
}
