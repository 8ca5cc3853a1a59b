/**
 * The README's "Use it as a library" example runs as it stands: extracted from README.md, run by
 * Node in a scratch folder where the package's public name resolves to this checkout through
 * node_modules (as after `npm install`), so the import goes through package.json's exports map.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { access, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { NO_HANG_TIMEOUT_MS, tempDir } from "../helpers/context.js";

/** The checkout: dist/test/e2e/ is three folders below it. */
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SECTION = "## Use it as a library";
const run = promisify(execFile);

/** The first ```js block of the README's library section. */
async function readmeExample(): Promise<string> {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`\n${SECTION}\n`);
  assert.ok(start >= 0, `README.md has no "${SECTION}" section`);
  const section = readme.slice(start + SECTION.length + 2).split(/\n## /)[0] ?? "";
  const block = /\n```js\n([\s\S]*?)\n```\n/.exec(section)?.[1];
  assert.ok(block !== undefined, `README.md's "${SECTION}" has no \`\`\`js example`);
  return block;
}

/** A folder whose node_modules holds the package under its public name, as an install would. */
async function scratchProject(base: string): Promise<{ dir: string; name: string }> {
  const { name } = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { name: string };
  const dir = join(base, "project");
  const link = join(dir, "node_modules", ...name.split("/"));
  await mkdir(join(link, ".."), { recursive: true });
  await symlink(ROOT, link, "dir");
  return { dir, name };
}

/**
 * Runs `node file` with TELEPORT_HOME set; a run past the timeout is killed and fails: the
 * example must close everything it opened for Node to exit on its own.
 */
async function runNode(
  file: string,
  home: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TELEPORT_HOME: home };
  delete env.NODE_TEST_CONTEXT; // the child would report to this test runner
  try {
    const { stdout, stderr } = await run(process.execPath, [file], { env, timeout: NO_HANG_TIMEOUT_MS });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: number; killed?: boolean; stdout?: string; stderr?: string };
    assert.ok(failed.killed !== true, `node ${file} did not exit within ${NO_HANG_TIMEOUT_MS} ms`);
    return { code: failed.code ?? -1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? String(err) };
  }
}

test("the README's library example runs as it stands and prints what it promises", async (t) => {
  const base = await tempDir(t, "readme-library");
  const { dir } = await scratchProject(base);
  const example = join(dir, "example.mjs");
  await writeFile(example, await readmeExample());
  const home = join(base, "home");

  const result = await runNode(example, home);

  assert.equal(result.code, 0, `the example failed: ${result.stderr}`);
  const lines = result.stdout.trim().split("\n");
  assert.match(lines[0] ?? "", /^pulled 8 files, 8388608 bytes from the network$/);
  assert.equal(lines[1], "pulled again: 0 bytes from the network");
  assert.equal(lines[2], "cancelled: TELEPORT_ERR_CANCELLED");
  // The pulls used the chunk index in TELEPORT_HOME, as the CLI does.
  await access(join(home, "index.db"));
});

test("the package's public name resolves to the entry point, and nothing internal is exported", async (t) => {
  const base = await tempDir(t, "readme-exports");
  const { dir, name } = await scratchProject(base);
  const probe = join(dir, "probe.mjs");
  await writeFile(
    probe,
    `const library = await import(${JSON.stringify(name)});
console.log(["pullLink", "Host", "ChunkIndex", "ErrorCode", "teleportHome"].map((key) => key in library).join());
await import(${JSON.stringify(`${name}/dist/src/store/chunk-index.js`)}).then(
  () => console.log("internal module exported"),
  (err) => console.log(err.code),
);
`,
  );

  const result = await runNode(probe, join(base, "home"));

  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout.trim().split("\n"), [
    "true,true,true,true,true",
    "ERR_PACKAGE_PATH_NOT_EXPORTED",
  ]);
});
