/**
 * Plaintext data streams (--no-encryption) in process: they carry chunks and nothing else, still
 * need the link's secret, are refused by a host that does not allow them, and report a file that
 * shrank without ending the stream. Runs with the native addon and, under TELEPORT_NATIVE=0, on
 * the portable path (npm test runs this file both ways).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { TeleportClient } from "../../src/client/client.js";
import type { HostConnection } from "../../src/client/host-connection.js";
import { DataStreamFactory } from "../../src/client/pool/data-streams.js";
import { ErrorCode, type TeleportError } from "../../src/errors.js";
import { Host } from "../../src/host/host.js";
import type { ShareLink } from "../../src/transport/link.js";
import { type ChunkRequest, MessageType, statRequestCodec } from "../../src/wire/messages.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

/** A plaintext data stream to the host of `link` that names no control connection. */
function bareStream(shareLink: ShareLink): Promise<HostConnection> {
  const spec = { link: shareLink, clientId: randomBytes(16), transport: "tcp" as const, encrypted: false };
  return new DataStreamFactory(spec).open("tcp");
}

/** A data stream over plaintext TCP of `control`, as a pull with --no-encryption opens, with `secret`. */
function plaintextStream(control: TeleportClient, secret = control.link.secret): Promise<HostConnection> {
  const { spec } = control.dataStreams({ encrypted: false });
  return new DataStreamFactory({ ...spec, link: { ...spec.link, secret } }).open("tcp");
}

test("a plaintext stream: chunks only, the link's secret and a control connection still required, refused by a host that does not allow it", async (t) => {
  const base = await tempDir(t, "plaintext-stream");
  await writeFile(join(base, "file"), "plaintext");
  const start = async (allowPlaintext: boolean) => {
    const host = await Host.start({
      root: base,
      home: join(base, `home-${allowPlaintext}`),
      bind: "127.0.0.1",
      allowPlaintext,
      transports: ["tcp"],
    });
    onCleanup(t, () => host.close());
    return host;
  };
  const open = await start(true);
  const control = await TeleportClient.connect(open.link, { plaintext: true });
  onCleanup(t, () => control.close());
  const client = await plaintextStream(control);
  onCleanup(t, () => client.close());
  const statOverPlaintext = async () => {
    for await (const _ of client.channel.stream(MessageType.STAT, statRequestCodec, { path: "file" }));
  };
  await assert.rejects(statOverPlaintext(), (err: TeleportError) => {
    assert.equal(err.code, ErrorCode.PROTOCOL);
    assert.match(err.message, /only chunks are served over an unencrypted stream/);
    return true;
  });
  await assert.rejects(plaintextStream(control, Buffer.alloc(32, 1)), { code: ErrorCode.AUTH });
  await assert.rejects(bareStream(open.link), (err: TeleportError) => {
    assert.equal(err.code, ErrorCode.AUTH);
    assert.match(err.message, /names no open connection of its client/);
    return true;
  });
  const closed = await start(false);
  await assert.rejects(bareStream(closed.link), (err: TeleportError) => {
    assert.equal(err.code, ErrorCode.CONNECTION);
    assert.match(err.message, /does it allow --no-encryption/);
    return true;
  });
});

test("a plaintext stream whose file got shorter since it was listed: FILE_CHANGED, and the stream goes on", async (t) => {
  const { base, share } = await makeShare(t, "plaintext-changed");
  const path = join(share, "big.bin");
  await writeFile(path, pseudoRandomBytes(3 * MiB, "plaintext changed"));
  const host = await hostInProcess(t, {
    base,
    share,
    allowPlaintext: true,
    transports: ["tcp"],
  });
  const control = await TeleportClient.connect(host.link, { plaintext: true });
  onCleanup(t, () => control.close());
  const chunks: ChunkRequest[] = [];
  for await (const event of control.manifest("big.bin")) {
    if (event.kind === "chunks") for (const chunk of event.chunks) chunks.push({ ...chunk, path: "big.bin" });
  }
  const data = await control.dataStreams({ encrypted: false }).open("tcp");
  onCleanup(t, () => data.close());
  await truncate(path, MiB);
  await assert.rejects(
    data.fetchChunks(chunks, () => {}),
    { code: ErrorCode.FILE_CHANGED },
  );
  const first = chunks[0] as ChunkRequest;
  let received: Buffer | undefined;
  await data.fetchChunks([first], (_request, bytes) => {
    received = Buffer.from(bytes);
  });
  assert.equal(received?.length, first.size, "the same stream serves what is still there");
});

test("a plaintext stream serves only files its control connection was listed, even with valid MACs", async (t) => {
  const { base, share } = await makeShare(t, "plaintext-listed", {
    "listed.txt": "pulled\n",
    "other.txt": "not\n",
  });
  const host = await hostInProcess(t, { base, share, allowPlaintext: true, transports: ["tcp"] });
  const control = await TeleportClient.connect(host.link, { plaintext: true });
  onCleanup(t, () => control.close());
  const chunks: ChunkRequest[] = [];
  for await (const event of control.manifest("listed.txt")) {
    if (event.kind === "chunks")
      for (const chunk of event.chunks) chunks.push({ ...chunk, path: "listed.txt" });
  }
  const data = await plaintextStream(control);
  onCleanup(t, () => data.close());
  const other = Buffer.from("not\n");
  const unlisted = { hash: hashBytes(other), size: other.length, path: "other.txt", offset: 0 };
  await assert.rejects(
    data.fetchChunks([unlisted], () => {}),
    (err: TeleportError) => {
      assert.equal(err.code, ErrorCode.AUTH);
      assert.match(err.message, /"other.txt" is not served over an unencrypted stream: it was not listed/);
      return true;
    },
  );
  let received = 0;
  await data.fetchChunks(chunks, (_request, bytes) => {
    received += bytes.length;
  });
  assert.equal(received, "pulled\n".length, "the listed file is served");
});
