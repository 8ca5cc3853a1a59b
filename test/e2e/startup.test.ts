/**
 * Start-up: `teleport --version`, `--help` and `completion` load none of the heavy modules (the
 * QUIC binding, SQLite, zstd, BLAKE3, X.509, the transports, the client and host), which a command
 * loads when it runs. Checked by what was loaded, not by timing: a preload (`--import`) records
 * every module the ESM loader resolves and every CommonJS module required, and the test reads
 * the list.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { pathToFileURL } from "node:url";
import { runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/context.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

/** Modules a command loads only when it needs them; the patterns match their paths. */
const HEAVY_MODULES: readonly RegExp[] = [
  /node_modules\/better-sqlite3\//,
  /node_modules\/zstd-napi\//,
  /node_modules\/@napi-rs\/blake-hash\//,
  /node_modules\/@peculiar\/x509\//,
  /node_modules\/@chainsafe\/libp2p-quic/,
  /node_modules\/cli-progress\//,
  /node_modules\/vega/,
  /node_modules\/(@noble\/curves|multicast-dns|uqr)\//,
  /\/src\/transport\/(quic-binding|tcp|select)\.js$/,
  /\/src\/(client\/client|host\/host|store\/chunk-index|chunking\/hash)\.js$/,
];

/**
 * A preload that writes the modules the process loaded to $MODULE_LIST at exit. The loader
 * hooks run in a thread of their own (Node 20), so they append each URL to the file as they
 * resolve it; the main thread adds the CommonJS cache at exit.
 */
const PRELOAD = `
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";
const list = process.env.MODULE_LIST;
register("data:text/javascript," + encodeURIComponent(\`
  import { appendFileSync } from "node:fs";
  export async function resolve(specifier, context, next) {
    const resolved = await next(specifier, context);
    appendFileSync(\${JSON.stringify(list)}, resolved.url + "\\\\n");
    return resolved;
  }
\`));
const cache = createRequire(import.meta.url).cache;
process.on("exit", () => appendFileSync(list, Object.keys(cache).join("\\n") + "\\n"));
`;

/** The modules `teleport ...args` loaded, one path or URL each. */
async function loadedModules(t: TestContext, args: string[]): Promise<string[]> {
  const dir = await tempDir(t, "startup");
  const preload = join(dir, "record-modules.mjs");
  const list = join(dir, "modules.txt");
  await writeFile(preload, PRELOAD);
  await writeFile(list, "");
  const result = await runCli(args, {
    TELEPORT_HOME: join(dir, "home"),
    MODULE_LIST: list,
    NODE_OPTIONS: `--import=${pathToFileURL(preload).href}`,
  });
  assert.equal(result.code, 0, `teleport ${args.join(" ")} failed: ${result.stderr}`);
  return (await readFile(list, "utf8")).split("\n").filter((line) => line !== "");
}

function heavyAmong(modules: readonly string[]): string[] {
  return modules.filter((module) => HEAVY_MODULES.some((pattern) => pattern.test(module)));
}

for (const args of [["--version"], ["--help"], ["pull", "--help"], ["completion", "bash"]]) {
  test(`teleport ${args.join(" ")} loads none of the heavy modules`, async (t) => {
    const modules = await loadedModules(t, args);
    assert.ok(
      modules.some((module) => module.endsWith("/src/cli/main.js")),
      "the preload recorded the CLI's modules",
    );
    assert.deepEqual(heavyAmong(modules), []);
  });
}

test("a command that needs them loads them: the preload sees what is loaded", async (t) => {
  const dir = await tempDir(t, "startup-manifest");
  const file = join(dir, "file.txt");
  await writeFile(file, "some bytes\n");
  const heavy = heavyAmong(await loadedModules(t, ["manifest", file]));
  assert.ok(
    heavy.some((module) => module.includes("/@napi-rs/blake-hash/")),
    `manifest hashes with BLAKE3; loaded: ${heavy.join(", ")}`,
  );
});

test("teleport ls LINK opens no chunk index, so it loads no SQLite", async (t) => {
  const folder = await makeShare(t, "startup-ls", { "a.txt": "listed\n" });
  const host = await hostWithCli(t, folder);
  const modules = await loadedModules(t, ["ls", host.link]);
  assert.ok(
    modules.some((module) => module.includes("/src/client/client.js")),
    "ls loaded the client",
  );
  assert.deepEqual(
    modules.filter((module) => module.includes("/better-sqlite3/")),
    [],
  );
});
