/**
 * The host applies `--exclude` as it walks: an excluded folder is never opened, so what is inside
 * it is neither sent nor even met (a FIFO there, which a walk reports as skipped, is not).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

interface Summary {
  files: number;
  skipped: { path: string }[];
}

describe("--exclude on the host", () => {
  it("an excluded folder is not walked: nothing inside it is sent or met", async (t) => {
    const folder = await makeShare(t, "filters", { "src/main.c": "int main;\n", "build/out.o": "o\n" });
    mkdirSync(join(folder.share, "build", "deep"));
    execFileSync("mkfifo", [join(folder.share, "build", "deep", "pipe")]);
    const host = await hostWithCli(t, folder);

    const everything = await runCli(["pull", host.link, join(folder.base, "all"), "--json"], folder.env);
    assert.equal(everything.code, 0, everything.stderr);
    const all = JSON.parse(everything.stdout) as Summary;
    assert.deepEqual(
      all.skipped.map(({ path }) => path),
      ["build/deep/pipe"],
    );

    const dest = join(folder.base, "filtered");
    const filtered = await runCli(["pull", host.link, dest, "--json", "--exclude", "/build"], folder.env);
    assert.equal(filtered.code, 0, filtered.stderr);
    const some = JSON.parse(filtered.stdout) as Summary;
    assert.deepEqual(some.skipped, [], "the FIFO in the excluded folder was never met");
    assert.equal(some.files, 1);
    assert.ok(existsSync(join(dest, "src/main.c")) && !existsSync(join(dest, "build")));
  });
});
