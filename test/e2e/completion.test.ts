/**
 * `teleport completion bash|zsh|fish`: the bash script, loaded into a real bash, completes
 * commands and options as a user's TAB would (the completion function run on COMP_WORDS); the
 * zsh and fish scripts are checked by their shells' parsers, where those shells are installed.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { createProgram } from "../../src/cli/main.js";
import { type CliEnv, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/context.js";

async function completionScript(t: TestContext, shell: string): Promise<{ path: string; env: CliEnv }> {
  const dir = await tempDir(t, `completion-${shell}`);
  const env = { TELEPORT_HOME: join(dir, "home") };
  const result = await runCli(["completion", shell], env);
  assert.equal(result.code, 0, result.stderr);
  const path = join(dir, `teleport.${shell}`);
  await writeFile(path, result.stdout);
  return { path, env };
}

/** What bash offers for the command line `words` (the last one being completed). */
function bashCompletes(script: string, words: readonly string[]): string[] {
  const quoted = words.map((word) => `'${word}'`).join(" ");
  const program = `source "$1" && COMP_WORDS=(${quoted}) && COMP_CWORD=${words.length - 1} && _teleport teleport && printf '%s\\n' "\${COMPREPLY[@]}"`;
  const output = execFileSync("bash", ["-c", program, "bash", script], { encoding: "utf8" });
  return output.split("\n").filter((line) => line !== "");
}

function hasShell(shell: string): boolean {
  return spawnSync(shell, ["-c", "exit 0"]).status === 0;
}

test("bash: teleport pu<TAB> offers pull and push, pul<TAB> completes to pull, and pull's options are offered", async (t) => {
  const { path } = await completionScript(t, "bash");
  assert.deepEqual(bashCompletes(path, ["teleport", "pu"]), ["pull", "push"]);
  assert.deepEqual(bashCompletes(path, ["teleport", "pul"]), ["pull"]);
  const pullOptions = bashCompletes(path, ["teleport", "pull", "--"]);
  for (const option of ["--path", "--json", "--streams", "--transport", "--compress-level", "--help"])
    assert.ok(pullOptions.includes(option), `${option} in ${pullOptions.join(" ")}`);
  assert.ok(!pullOptions.includes("--recursive"), "ls's options are not pull's");
  assert.deepEqual(bashCompletes(path, ["teleport", "store", ""]), ["stats", "gc"]);
  assert.deepEqual(bashCompletes(path, ["teleport", "store", "gc", "--j"]), ["--json"]);
  // An option's value, and a command's arguments, are left to the shell's file names.
  assert.deepEqual(bashCompletes(path, ["teleport", "pull", "--path", ""]), []);
  assert.deepEqual(bashCompletes(path, ["teleport", "pull", "LINK", ""]), []);
});

test("bash: every command and option of the program is in the script", async (t) => {
  const { path } = await completionScript(t, "bash");
  const program = createProgram();
  const commands = bashCompletes(path, ["teleport", ""]);
  assert.deepEqual(
    commands,
    program.commands.map((command) => command.name()),
  );
  for (const command of program.commands) {
    const offered = bashCompletes(path, ["teleport", command.name(), "-"]);
    for (const option of command.options) {
      const flag = option.long ?? option.short;
      assert.ok(flag !== undefined && offered.includes(flag), `${command.name()} ${flag}`);
    }
  }
});

for (const [shell, check] of [
  ["zsh", ["-n"]],
  ["fish", ["--no-execute"]],
] as const) {
  test(`${shell}: the script parses`, async (t) => {
    if (!hasShell(shell)) {
      t.skip(`${shell} is not installed (apt-get install ${shell})`);
      return;
    }
    const { path } = await completionScript(t, shell);
    const parsed = spawnSync(shell, [...check, path], { encoding: "utf8" });
    assert.equal(parsed.status, 0, parsed.stderr);
  });
}

test("zsh: the completion function offers the commands after teleport, file names for an option's value", async (t) => {
  if (!hasShell("zsh")) {
    t.skip("zsh is not installed (apt-get install zsh)");
    return;
  }
  const { path } = await completionScript(t, "zsh");
  // _describe and compdef stand in for zsh's completion system, recording what is offered.
  const program = [
    "compdef() { :; }",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: zsh's parameter expansion
    '_describe() { local -a entries; entries=("${(@P)${@[-1]}}"); print -l -- "${entries[@]%%:*}"; }',
    '_files() { print -- "<files>"; }',
    'source "$1"',
    "words=(teleport pu); CURRENT=2; _teleport",
    "words=(teleport pull --path ''); CURRENT=4; _teleport",
  ].join("\n");
  const output = execFileSync("zsh", ["-c", program, "zsh", path], { encoding: "utf8" });
  assert.deepEqual(
    output.split("\n").filter((line) => line !== ""),
    [
      "host",
      "relay",
      "pull",
      "push",
      "send",
      "receive",
      "ls",
      "cat",
      "mount",
      "umount",
      "manifest",
      "index",
      "store",
      "bench",
      "demo",
      "config",
      "completion",
      "<files>",
    ],
  );
});

test("fish: teleport pul<TAB> completes to pull; store gc offers --json", async (t) => {
  if (!hasShell("fish")) {
    t.skip("fish is not installed (apt-get install fish)");
    return;
  }
  const { path } = await completionScript(t, "fish");
  const complete = (line: string) =>
    execFileSync("fish", ["-c", `source $argv[1]; complete -C "${line}"`, path], { encoding: "utf8" })
      .split("\n")
      .filter((entry) => entry !== "")
      .map((entry) => entry.split("\t")[0]);
  assert.deepEqual(complete("teleport pul"), ["pull"]);
  assert.deepEqual(complete("teleport store gc --"), ["--help", "--json"]);
});

test("completion refuses a shell it does not know", async (t) => {
  const dir = await tempDir(t, "completion-unknown");
  const result = await runCli(["completion", "tcsh"], { TELEPORT_HOME: join(dir, "home") });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /expected one of bash, zsh, fish/);
});
