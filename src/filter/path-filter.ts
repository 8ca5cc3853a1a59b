/**
 * `--exclude` and `--include` patterns as rsync reads them, matched by picomatch (not hand-written
 * globbing; docs/decisions.md, "Filters: picomatch"). Rules are tried in the order given and the
 * first that matches decides; a path no rule matches is included. Paths are relative to the
 * transfer root (what lands directly in DEST), "/"-separated.
 *
 * As rsync: a pattern starting with "/" is anchored at the transfer root, any other matches the
 * end of the path (a name at any depth, or trailing components for one holding "/"); a trailing
 * "/" matches folders only; `*` and `?` stop at "/", `**` crosses it; `dir/**` matches what is
 * inside dir but not dir itself, and a `**` between two slashes at least one folder. A folder a
 * rule excludes is not walked, so nothing inside it is sent whatever a later rule says.
 *
 * Not supported (refused or taken literally): `***`, rule prefixes ("+ ", "- "), merge files and
 * `--filter`, `!`, `--delete-excluded`; and a `**` inside a name (`fo**ar`) stops at "/" here, as
 * picomatch reads it, where rsync's crosses it.
 */
import picomatch from "picomatch";
import { ErrorCode, TeleportError } from "../errors.js";
import { FilterKind, type FilterRule, MAX_FILTER_RULES, MAX_PATTERN_BYTES } from "../wire/messages.js";

export { FilterKind, type FilterRule };

interface CompiledRule {
  readonly exclude: boolean;
  readonly folderOnly: boolean;
  readonly matches: (path: string) => boolean;
}

/** rsync has no braces or extended globs; its `*` matches names starting with a dot. */
const GLOB_OPTIONS: picomatch.PicomatchOptions = { dot: true, nobrace: true, noextglob: true };

export class PathFilter {
  readonly rules: readonly FilterRule[];
  readonly #compiled: readonly CompiledRule[];

  private constructor(rules: readonly FilterRule[]) {
    this.rules = rules;
    this.#compiled = rules.map(compileRule);
  }

  /**
   * A MANIFEST request's rules as the host's walk asks them (undefined: none), about wire paths
   * of the pull of `path`: relative to its parent, which lands in the client's DEST.
   */
  static forRequest(
    rules: readonly FilterRule[] | undefined,
    path: string,
  ): ((wirePath: string, isFolder: boolean) => boolean) | undefined {
    if (rules === undefined || rules.length === 0) return undefined;
    const slash = path.lastIndexOf("/");
    return PathFilter.compile(rules).beneath(slash < 0 ? "" : path.slice(0, slash));
  }

  /** Compiles `rules`; throws USAGE for a pattern it does not take. */
  static compile(rules: readonly FilterRule[]): PathFilter {
    if (rules.length > MAX_FILTER_RULES)
      throw new TeleportError(ErrorCode.USAGE, `more than ${MAX_FILTER_RULES} --include/--exclude rules`);
    return new PathFilter(rules);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Whether the path (relative to the transfer root) is excluded: the first rule matching it decides. */
  excludes(path: string, isFolder: boolean): boolean {
    for (const rule of this.#compiled) {
      if (rule.folderOnly && !isFolder) continue;
      if (rule.matches(path)) return rule.exclude;
    }
    return false;
  }

  /**
   * The same question about a path under a folder `base` ("" the top): what a host walking a share
   * asks of its wire paths, `base` being the pulled item's parent, which the transfer root is.
   */
  beneath(base: string): (wirePath: string, isFolder: boolean) => boolean {
    const cut = base === "" ? 0 : base.length + 1;
    return (wirePath, isFolder) => wirePath.length > cut && this.excludes(wirePath.slice(cut), isFolder);
  }
}

function compileRule(rule: FilterRule): CompiledRule {
  let glob = rule.pattern;
  const folderOnly = glob.endsWith("/");
  while (glob.endsWith("/")) glob = glob.slice(0, -1);
  const anchored = glob.startsWith("/");
  if (anchored) glob = glob.slice(1);
  if (Buffer.byteLength(rule.pattern) > MAX_PATTERN_BYTES)
    throw new TeleportError(ErrorCode.USAGE, `a pattern over ${MAX_PATTERN_BYTES} bytes`);
  if (glob === "" || glob.includes("***") || glob.split("/").some((part) => part === "" || part === ".."))
    throw new TeleportError(ErrorCode.USAGE, `the pattern "${rule.pattern}" is not one teleport takes`);
  // Where picomatch's `**` matches no folder at all and rsync's does not: `dir/**` is what is
  // inside dir, not dir itself; `a/**/b` holds a folder at least between a and b; an anchored
  // `/**/x` at least one above x (an unanchored `**/x` matches a top-level x in both).
  glob = glob.replaceAll("/**/", "/*/**/");
  if (glob.endsWith("/**")) glob = `${glob}/*`;
  if (anchored && glob.startsWith("**/")) glob = `*/${glob}`;
  if (!anchored) glob = `**/${glob}`;
  return {
    exclude: rule.kind === FilterKind.EXCLUDE,
    folderOnly,
    matches: picomatch(glob, GLOB_OPTIONS),
  };
}
