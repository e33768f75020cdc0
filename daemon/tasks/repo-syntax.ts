/**
 * What a task's `repo` and `ref` may look like, without touching the disk or the network. The
 * one place these are judged: at submit (spec validation) and again by the workspace before
 * git sees them, so a spec the claiming worker would refuse is refused when it is submitted.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshError } from "../errors.js";

/** Transports a task's repo may use (`ext::` and friends would run commands). */
export const ALLOWED_PROTOCOLS = ["file", "git", "http", "https", "ssh"];

export interface RepoSource {
  /** What git is given as the remote URL. */
  url: string;
  /** For a local origin: its absolute path. */
  localPath?: string;
  /** Identity of the origin; the cache folder is named after its hash. */
  key: string;
  /** For messages: the URL without credentials. */
  display: string;
  /** `mesh://<repo id>`: a repository shipped as bundles through the mesh (daemon/transfer/). */
  meshRepoId?: string;
}

/** A repo shipped through the mesh: `mesh://` and its id (the repo's root commit, hex). */
export const MESH_REPO_RE = /^mesh:\/\/([0-9a-f]{40}(?:[0-9a-f]{24})?)$/;
/** A full commit id, as a `mesh://` repo's ref must be. */
export const COMMIT_ID_RE = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;
/** A repo path the CLI resolves on the submitting machine and ships (`.`, `./x`, `../x`). */
export const isSubmitterPath = (repo: string): boolean => /^\.\.?(\/|$)/.test(repo);

/** `https://user:secret@host/x` -> `https://***@host/x`. */
export function redactUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, "$1***@");
}

function invalid(message: string, field = "repo"): MeshError {
  return new MeshError("INVALID_ARGUMENT", message, { field });
}

export function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

const SCP_LIKE = /^([A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+:(?!\/\/)[^\s]/;

/**
 * The user, host and path of a remote URL (`scheme://user@host/path` or `user@host:path`): the
 * parts git hands to ssh (and to the server), where one starting with "-" would be an option.
 */
function remoteParts(repo: string, scheme: string | undefined): string[] {
  if (scheme) {
    const rest = repo.slice(scheme.length + 3);
    const slash = rest.indexOf("/");
    const authority = slash < 0 ? rest : rest.slice(0, slash);
    const at = authority.lastIndexOf("@");
    const user = at < 0 ? "" : authority.slice(0, at);
    const host = (at < 0 ? authority : authority.slice(at + 1)).replace(/^\[/, "");
    return [user, host, slash < 0 ? "" : rest.slice(slash + 1)];
  }
  const colon = repo.indexOf(":");
  const at = repo.lastIndexOf("@", colon);
  return [at < 0 ? "" : repo.slice(0, at), repo.slice(at + 1, colon), repo.slice(colon + 1)];
}

/** A task's `repo`: an absolute path, a `file|git|http|https|ssh` URL, or `user@host:path`. */
export function parseRepo(repo: string): RepoSource {
  if (repo.startsWith("-") || repo.trim() !== repo || hasControlChars(repo)) {
    throw invalid(
      `repo "${redactUrlCredentials(repo)}": must not start with "-", hold control characters or surrounding spaces`,
    );
  }
  const display = redactUrlCredentials(repo);
  const mesh = MESH_REPO_RE.exec(repo);
  if (mesh?.[1]) return { url: repo, key: `mesh:${mesh[1]}`, display: repo, meshRepoId: mesh[1] };
  if (repo.startsWith("mesh:")) {
    throw invalid(
      `repo "${display}": a mesh repo is mesh://<repo id> (hex); \`mesh submit\` makes it from repo: .`,
    );
  }
  if (/^[A-Za-z0-9+.-]+::/.test(repo)) {
    throw invalid(`repo "${display}": remote helpers (<transport>::<address>) are not allowed`);
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(repo)?.[1]?.toLowerCase();
  if (scheme) {
    if (!ALLOWED_PROTOCOLS.includes(scheme)) {
      throw invalid(
        `repo "${display}": protocol "${scheme}" is not allowed (${ALLOWED_PROTOCOLS.join(", ")})`,
      );
    }
    if (scheme !== "file") refuseOptionLike(repo, scheme, display);
    if (scheme === "file") {
      let path: string;
      try {
        path = fileURLToPath(repo);
      } catch {
        throw invalid(`repo "${display}": not a valid file:// URL`);
      }
      return { url: path, localPath: path, key: `file:${path}`, display };
    }
    return { url: repo, key: repo.replace(/\/+$/, ""), display };
  }
  if (repo.startsWith("/")) {
    const path = resolve(repo);
    return { url: path, localPath: path, key: `file:${path}`, display: path };
  }
  if (SCP_LIKE.test(repo)) refuseOptionLike(repo, undefined, display);
  if (SCP_LIKE.test(repo)) return { url: repo, key: repo.replace(/\/+$/, ""), display };
  throw invalid(
    `repo "${display}": expected an absolute path or a URL (https://, ssh://, git@host:path, file://), or a path of the submitting machine starting with . (\`mesh submit\` ships it: repo: .); other relative paths mean nothing on another machine`,
  );
}

function refuseOptionLike(repo: string, scheme: string | undefined, display: string): void {
  if (remoteParts(repo, scheme).some((p) => p.startsWith("-"))) {
    throw invalid(
      `repo "${display}": its user, host or path starts with "-" (ssh, which git runs, would read it as an option)`,
    );
  }
}

const REF_RE = /^[A-Za-z0-9._/@{}^~+-]+$/;

export function validateRef(ref: string): void {
  if (ref.startsWith("-")) throw invalid(`ref "${ref}": must not start with "-"`, "ref");
  if (!REF_RE.test(ref)) throw invalid(`ref "${ref}": not a branch, tag or commit name`, "ref");
}
