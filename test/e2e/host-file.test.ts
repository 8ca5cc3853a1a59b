/**
 * `teleport host FILE`: one file shared. A pull brings it with its bytes, mode and mtime into
 * DEST (as `pull --path FILE` does), and leaves DEST's own mode alone; nothing else in the file's
 * folder answers any request (ls, cat, pull --path, `..`), over either transport.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, pseudoRandomBytes } from "../helpers/tree.js";

const MTIME = new Date("2022-02-03T04:05:06.789Z");

async function sharedFile(t: TestContext) {
  const folder = await makeShare(t, "host-file", {
    "secret.txt": "not shared\n",
    "private/key": "not shared either\n",
  });
  const file = join(folder.share, "file.bin");
  writeFileSync(file, pseudoRandomBytes(3 * 1024 * 1024 + 17, "host-file"));
  chmodSync(file, 0o640);
  utimesSync(file, MTIME, MTIME);
  const host = await hostWithCli(t, { base: folder.base, share: file });
  return { ...folder, file, link: host.link };
}

describe("host FILE", () => {
  it("pull brings the one file, its bytes, mode and mtime, into DEST and leaves DEST's mode", async (t) => {
    const { base, share, env, link } = await sharedFile(t);
    const dest = join(base, "dest");
    mkdirSync(dest, { mode: 0o711 });
    chmodSync(dest, 0o711);
    const pulled = await runCli(["pull", link, dest, "--json"], env);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(readdirSync(dest), ["file.bin"]);
    await compareTrees(share, dest, { ignore: ["secret.txt", "private"] });
    assert.equal(statSync(dest).mode & 0o777, 0o711, "DEST keeps its own mode");

    const byPath = join(base, "by-path");
    const again = await runCli(["pull", link, byPath, "--path", "file.bin"], env);
    assert.equal(again.code, 0, again.stderr);
    await compareTrees(share, byPath, { ignore: ["secret.txt", "private"] });
  });

  it("no other name of the file's folder answers ls, cat or pull, nor a path with ..", async (t) => {
    const { base, env, link, file } = await sharedFile(t);
    const listed = await runCli(["ls", link, "--json"], env);
    assert.equal(listed.code, 0, listed.stderr);
    const names = listed.stdout
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { path: string }).path);
    assert.deepEqual(names, ["file.bin"]);
    for (const args of [
      ["ls", link, "private"],
      ["ls", link, "secret.txt"],
      ["cat", link, "secret.txt"],
      ["cat", link, "private/key"],
      ["pull", link, join(base, "d1"), "--path", "secret.txt"],
      ["pull", link, join(base, "d2"), "--path", "private"],
      ["pull", link, join(base, "d3"), "--path", "file.bin/../secret.txt"],
      ["pull", link, join(base, "d4"), "--path", "../share/secret.txt"],
    ]) {
      const refused = await runCli(args, env);
      assert.notEqual(refused.code, 0, `${args.join(" ")} succeeded: ${refused.stdout}`);
      assert.match(refused.stderr, new RegExp(`${ErrorCode.NOT_FOUND}|${ErrorCode.PATH_ESCAPE}`));
      assert.doesNotMatch(refused.stdout, /not shared/);
    }
    // A local user puts a symlink to a sibling in the file's place: it is not followed.
    renameSync(file, join(base, "moved.bin"));
    symlinkSync("secret.txt", file);
    for (const args of [
      ["cat", link, "file.bin"],
      ["pull", link, join(base, "s1"), "--path", "file.bin"],
      ["pull", link, join(base, "s2")],
    ]) {
      const through = await runCli(args, env);
      assert.doesNotMatch(through.stdout, /not shared/, args.join(" "));
      for (const dest of ["s1", "s2"])
        assert.ok(
          !existsSync(join(base, dest, "file.bin")) ||
            lstatSync(join(base, dest, "file.bin")).isSymbolicLink(),
        );
    }
    const asListed = await runCli(["ls", link, "file.bin", "--json"], env);
    assert.equal(asListed.code, 0, asListed.stderr);
    assert.equal(
      (JSON.parse(asListed.stdout) as { kind: string }).kind,
      "symlink",
      "described, not followed",
    );
    rmSync(file);
    renameSync(join(base, "moved.bin"), file);

    // QUIC is served by the host's main thread, TCP by its threads (each adopting the share).
    const overQuic = await runCli(
      ["pull", link, join(base, "q1"), "--path", "file.bin", "--transport", "quic"],
      env,
    );
    if (overQuic.code !== 0) {
      t.diagnostic(`QUIC not checked here: ${overQuic.stderr.trim()}`);
      return;
    }
    const quic = await runCli(
      ["pull", link, join(base, "q2"), "--path", "secret.txt", "--transport", "quic"],
      env,
    );
    assert.notEqual(quic.code, 0);
    assert.match(quic.stderr, new RegExp(ErrorCode.NOT_FOUND));
  });
});
