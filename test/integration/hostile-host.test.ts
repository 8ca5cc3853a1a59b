/**
 * A hostile host must not make the client write outside the destination, through names, through
 * symlinks, or by lying about sizes; and a first healthy answer proves the harness itself works.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import {
  dirEntry,
  fileEntry,
  fileFrames,
  hostile,
  startHostileHost,
  symlinkEntry,
} from "../helpers/hostile-host.js";
import { findPartFiles, pseudoRandomBytes } from "../helpers/tree.js";

type Script = Parameters<typeof startHostileHost>[1];

async function pullFrom(
  t: TestContext,
  script: Script,
  options: { remotePath?: string; content?: Buffer } = {},
) {
  const base = await tempDir(t, "hostile");
  const dest = join(base, "dest");
  const outside = join(base, "outside");
  await mkdir(outside);
  const host = await startHostileHost(join(base, "home"), script, () => options.content ?? Buffer.alloc(0));
  onCleanup(t, () => host.close());
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());
  const outcome = await pull(client, { dest, remotePath: options.remotePath ?? "" }).then(
    (summary) => ({ summary, error: undefined }),
    (error: unknown) => ({ summary: undefined, error }),
  );
  // Nothing may appear beside the destination, whatever the host sent.
  assert.deepEqual((await readdir(base)).sort(), ["dest", "home", "outside"]);
  assert.deepEqual(await readdir(outside), []);
  assert.deepEqual(await findPartFiles(dest), []);
  return { ...outcome, dest };
}

function assertRefused(error: unknown, codes: ErrorCode[]): void {
  assert.ok(error instanceof TeleportError, `expected a TeleportError, got ${String(error)}`);
  assert.ok(codes.includes(error.code), `expected ${codes.join(" or ")}, got ${error.message}`);
}

test("the hostile-host harness serves a well-formed tree that pulls correctly", async (t) => {
  const data = pseudoRandomBytes(5 * 1024 * 1024 + 3, "hostile-host 5 MiB");
  const { error, summary, dest } = await pullFrom(
    t,
    [hostile.entries([dirEntry("")]), ...fileFrames("ok.bin", data)],
    {
      content: data,
    },
  );
  assert.equal(error, undefined);
  assert.equal(summary?.files, 1);
  assert.deepEqual(hashBytes(await readFile(join(dest, "ok.bin"))), hashBytes(data));
});

test("a name with .. is refused", async (t) => {
  const { error } = await pullFrom(t, [hostile.entries([dirEntry(""), dirEntry("../outside/evil")])]);
  assertRefused(error, [ErrorCode.PATH_ESCAPE]);
});

test("an absolute name is refused", async (t) => {
  const { error } = await pullFrom(t, [
    hostile.entries([dirEntry("")]),
    ...fileFrames("/tmp/evil", Buffer.from("x")),
  ]);
  assertRefused(error, [ErrorCode.PATH_ESCAPE]);
});

test("names with NUL, empty or over-long components are refused", async (t) => {
  for (const name of ["a\0b", "a//b", "x".repeat(300)]) {
    const { error } = await pullFrom(t, [hostile.entries([dirEntry(""), dirEntry(name)])]);
    assertRefused(error, [ErrorCode.UNSAFE_NAME]);
  }
});

test("an entry outside the requested folder is refused", async (t) => {
  const { error } = await pullFrom(t, [hostile.entries([dirEntry("docs"), dirEntry("other")])], {
    remotePath: "docs",
  });
  assertRefused(error, [ErrorCode.PROTOCOL]);
});

test("a file whose folder was never announced is refused", async (t) => {
  const { error } = await pullFrom(t, [
    hostile.entries([dirEntry("")]),
    ...fileFrames("ghost/x.txt", Buffer.from("x")),
  ]);
  assertRefused(error, [ErrorCode.PROTOCOL]);
});

test("a symlink leading outside the destination is refused", async (t) => {
  for (const target of ["../outside", "/etc", "a/../../.."]) {
    const { error } = await pullFrom(t, [hostile.entries([dirEntry(""), symlinkEntry("link", target)])]);
    assertRefused(error, [ErrorCode.PATH_ESCAPE]);
  }
});

test("a symlink then a file through it is refused", async (t) => {
  const { error } = await pullFrom(t, [
    hostile.entries([dirEntry(""), symlinkEntry("link", ".")]),
    ...fileFrames("link/x.txt", Buffer.from("through the link")),
  ]);
  assertRefused(error, [ErrorCode.PROTOCOL]);
});

test("a folder announced over an existing symlink is not written through", async (t) => {
  const { error } = await pullFrom(t, [
    hostile.entries([dirEntry(""), symlinkEntry("link", "."), dirEntry("link")]),
    ...fileFrames("link/x.txt", Buffer.from("through the link")),
  ]);
  assertRefused(error, [ErrorCode.UNSAFE_NAME]);
});

test("the share root announced as a file or symlink is refused", async (t) => {
  const asFile = await pullFrom(t, fileFrames("", Buffer.from("root")));
  assertRefused(asFile.error, [ErrorCode.PROTOCOL]);
  const asLink = await pullFrom(t, [hostile.entries([symlinkEntry("", "x")])]);
  assertRefused(asLink.error, [ErrorCode.PROTOCOL]);
});

test("a file hash that does not match the chunk list is refused, and nothing is written", async (t) => {
  const data = pseudoRandomBytes(100_000, "hostile-host 100 kB");
  const frames = fileFrames("f.bin", data);
  frames[frames.length - 1] = hostile.fileEnd(data.length, 1, Buffer.alloc(32, 7));
  const { error, dest } = await pullFrom(t, [hostile.entries([dirEntry("")]), ...frames], { content: data });
  assertRefused(error, [ErrorCode.PROTOCOL]);
  assert.deepEqual(await readdir(dest), []);
});

test("sizes that lie are refused: chunks past the end, gaps, a short file end", async (t) => {
  const hash = Buffer.alloc(32);
  const scripts: Script[] = [
    [
      hostile.entries([dirEntry("")]),
      hostile.fileBegin(fileEntry("f", 10)),
      hostile.chunks([{ offset: 0, size: 20, hash }]),
    ],
    [
      hostile.entries([dirEntry("")]),
      hostile.fileBegin(fileEntry("f", 10)),
      hostile.chunks([{ offset: 4, size: 6, hash }]),
    ],
    [hostile.entries([dirEntry("")]), hostile.fileBegin(fileEntry("f", 10)), hostile.fileEnd(10, 0)],
    [hostile.entries([dirEntry("")]), hostile.fileBegin(fileEntry("f", 10))],
  ];
  for (const script of scripts) {
    const { error } = await pullFrom(t, script);
    assertRefused(error, [ErrorCode.PROTOCOL]);
  }
});

test("chunk bytes that do not match their hash are never written", async (t) => {
  const data = pseudoRandomBytes(3 * 1024 * 1024, "hostile-host 3 MiB");
  const tampered = Buffer.from(data);
  tampered.writeUInt8(tampered.readUInt8(2 * 1024 * 1024 + 5) ^ 0xff, 2 * 1024 * 1024 + 5);
  const { error, dest } = await pullFrom(t, [hostile.entries([dirEntry("")]), ...fileFrames("f.bin", data)], {
    content: tampered,
  });
  assertRefused(error, [ErrorCode.CHUNK_CORRUPT]);
  assert.deepEqual(await readdir(dest), []);
});

test("a host answering in a protocol version this client does not speak is refused with TELEPORT_ERR_VERSION", async (t) => {
  const base = await tempDir(t, "hostile-version");
  for (const version of [0, 2, 65535]) {
    const host = await startHostileHost(
      join(base, `home-${version}`),
      [hostile.entries([dirEntry("")])],
      undefined,
      {
        version,
      },
    );
    onCleanup(t, () => host.close());
    await assert.rejects(TeleportClient.connect(host.link), (error: unknown) => {
      assertRefused(error, [ErrorCode.VERSION]);
      return true;
    });
  }
});
