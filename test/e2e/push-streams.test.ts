/**
 * The data streams of a push: the host's pull asks the pusher for them on the control connection
 * and the pusher dials them (push/offered-streams.ts, push/pusher-streams.ts). A real
 * `teleport host --allow-upload`; real pushers, and a hostile one built from the library's parts
 * that offers streams with tokens it was not given.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { DataStreamFactory } from "../../src/client/pool/data-streams.js";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../../src/engine/connection.js";
import { ErrorCode } from "../../src/errors.js";
import { HostSession } from "../../src/host/session.js";
import { platformIo } from "../../src/platform/io.js";
import { type PushSummary, push } from "../../src/push/pusher.js";
import { pusherContext } from "../../src/push/pusher-context.js";
import { offerStream, PusherStreams } from "../../src/push/pusher-streams.js";
import { PusherThreads } from "../../src/push/pusher-threads.js";
import { uploadReceiver } from "../../src/push/upload-receiver.js";
import { RecentChunks } from "../../src/serve/recent-chunks.js";
import { Share } from "../../src/serve/share.js";
import { ChunkIndex } from "../../src/store/chunk-index.js";
import { parseLink } from "../../src/transport/link.js";
import type { UploadResult } from "../../src/wire/messages.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

async function uploadHost(t: TestContext, label: string) {
  const { base, share } = await makeShare(t, label);
  const host = await hostWithCli(t, { base, share, args: ["--allow-upload"] });
  assert.ok(host.writeLink !== undefined, "the host printed no write link");
  await waitFor(async () => host.stderr().includes("share indexed for uploads") || undefined, {
    what: "the host to index its share",
  });
  return { base, share, host, writeLink: host.writeLink, env: { TELEPORT_HOME: join(base, "pusher-home") } };
}

test("a push moves its chunks over several data streams the pusher dials", async (t) => {
  const { base, share, writeLink, env } = await uploadHost(t, "push-streams");
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "big.bin"), pseudoRandomBytes(64 * MiB, "push-streams-big"));
  for (let i = 0; i < 40; i++) await writeFile(join(src, `small-${i}.txt`), `small file ${i}\n`);

  const result = await runCli(["push", src, writeLink, "--json"], env, { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as PushSummary;

  assert.ok((summary.streams ?? 0) > 1, `chunks came over ${summary.streams} data streams`);
  assert.ok(summary.bytesFromNetwork >= 64 * MiB);
  // Served from the pusher's stream threads; in portable mode, with no descriptor of SRC to give
  // a thread, from its main thread.
  const [place, other] =
    platformIo.kind === "native" ? (["worker", "main"] as const) : (["main", "worker"] as const);
  const served = summary.pusherStreams ?? { worker: 0, main: 0 };
  assert.ok(served[place] >= (summary.streams ?? 0), `served ${JSON.stringify(served)}`);
  assert.equal(served[other], 0);
  assert.deepEqual(await readFile(join(share, "src", "big.bin")), await readFile(join(src, "big.bin")));
  assert.equal(await readFile(join(share, "src", "small-39.txt"), "utf8"), "small file 39\n");
});

/**
 * A pusher made of the library's parts: it takes an upload of `src` and serves it on the
 * control connection as `push` does, and tells the test the tokens the host's pull asks for.
 */
async function libraryPusher(t: TestContext, writeLink: string, src: string, home: string, dials = true) {
  const client = await TeleportClient.connect(writeLink, { upload: true, transport: "tcp" });
  const dataStreams = client.dataStreams({ encrypted: true });
  const stream = await client.upload({ path: "in", source: "", bytes: 8 * MiB, files: 1 });
  const index = ChunkIndex.open(home);
  onCleanup(t, () => index.close());
  const share = await Share.open(src);
  onCleanup(t, () => share.close());
  const context = pusherContext({
    share,
    secret: dataStreams.spec.link.secret,
    index,
    transport: stream.transport,
    idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
    recent: RecentChunks.standalone(MiB),
    servedPath: undefined,
  });
  let result: UploadResult | undefined;
  context.onUploadResult = (told) => {
    result = told;
  };
  const honest = new PusherStreams(dataStreams, (offered) => new HostSession(offered, context));
  // The first token is held back for the test; every later one is answered as `push` would,
  // unless this pusher never `dials`: then each is only counted.
  const asked: Buffer[] = [];
  const firstToken = new Promise<Buffer>((resolve) => {
    context.onUploadStreamWanted = (token) => {
      context.onUploadStreamWanted = (later) => (dials ? honest.offer(later) : asked.push(later));
      resolve(Buffer.from(token)); // the frame's body may be a view into a buffer that is reused
    };
  });
  const session = new HostSession(stream, context);
  onCleanup(t, () => {
    honest.close();
    session.destroy();
  });
  const ended = session.closed.then(() => {
    honest.close();
    return result;
  });
  return { dataStreams, token: await firstToken, context, ended, asked };
}

test("a stream offered with a token unknown, another client's, already used, not routed, or over a read link is refused", async (t) => {
  const { base, share, host, writeLink } = await uploadHost(t, "push-streams-hostile");
  const src = join(base, "src");
  await mkdir(src);
  const data = pseudoRandomBytes(8 * MiB, "push-streams-hostile");
  await writeFile(join(src, "data.bin"), data);
  const { dataStreams, token, context, ended } = await libraryPusher(
    t,
    writeLink,
    src,
    join(base, "pusher-home"),
  );
  const dial = (factory: DataStreamFactory, route?: Buffer) =>
    factory.open(factory.spec.transport, { route });
  // A host that can hand descriptors to its pull's threads wants the stream routed by its token.
  const routed = platformIo.kind === "native";

  await assert.rejects(offerStream(await dial(dataStreams), randomBytes(token.length)), {
    code: ErrorCode.AUTH,
  });
  const otherClient = new DataStreamFactory({ ...dataStreams.spec, clientId: randomBytes(16) });
  await assert.rejects(offerStream(await dial(otherClient), token), { code: ErrorCode.AUTH });
  const reader = new DataStreamFactory({ ...dataStreams.spec, link: parseLink(host.link) });
  await assert.rejects(offerStream(await dial(reader), token), { code: ErrorCode.READ_ONLY });
  if (routed) {
    await assert.rejects(offerStream(await dial(dataStreams), token), {
      code: ErrorCode.AUTH,
      message: /no data stream is wanted/,
    });
  }

  // None of those used the token up: given back by its own client, the stream is taken.
  const taken = await offerStream(await dial(dataStreams, routed ? token : undefined), token);
  const served = new HostSession(taken, context);
  onCleanup(t, () => served.destroy());
  await assert.rejects(offerStream(await dial(dataStreams, routed ? token : undefined), token), {
    code: ErrorCode.AUTH,
  });

  const result = await ended;
  assert.equal(result?.code, "", result?.message);
  assert.deepEqual(await readFile(join(share, "in", "data.bin")), data);
});

test("a pusher that offers data streams and never opens one has its upload pulled over the control connection", async (t) => {
  const { base, share } = await makeShare(t, "push-streams-none");
  // A short wait for the streams that never come: the fallback, not the timeout, is under test.
  const host = await hostInProcess(t, {
    base,
    share,
    transports: ["tcp"],
    uploads: uploadReceiver({ indexShare: false, offerTimeoutMs: 300 }),
  });
  const src = join(base, "src");
  await mkdir(src);
  const data = pseudoRandomBytes(8 * MiB, "push-streams-none");
  await writeFile(join(src, "data.bin"), data);
  assert.ok(host.writeUrl !== undefined);
  const { ended, asked } = await libraryPusher(t, host.writeUrl, src, join(base, "pusher-home"), false);

  const result = await ended;
  assert.equal(result?.code, "", result?.message);
  assert.ok(asked.length >= 1, "the host asked for more than one data stream");
  assert.equal((JSON.parse(result?.summary ?? "{}") as { streams?: number }).streams, 0);
  assert.deepEqual(await readFile(join(share, "in", "data.bin")), data);
});

test("a push library caller may keep the data streams in the main thread (threads: 0)", async (t) => {
  const { base, share } = await makeShare(t, "push-streams-main");
  const host = await hostInProcess(t, {
    base,
    share,
    transports: ["tcp"],
    uploads: uploadReceiver({ indexShare: false }),
  });
  assert.ok(host.writeUrl !== undefined);
  const index = ChunkIndex.open(join(base, "pusher-home"));
  onCleanup(t, () => index.close());
  const src = join(base, "src");
  await mkdir(src);
  const data = pseudoRandomBytes(32 * MiB, "push-streams-main");
  await writeFile(join(src, "data.bin"), data);

  const summary = await push({ src, link: host.writeUrl, remotePath: "in", index, threads: 0 });
  assert.ok((summary.streams ?? 0) >= 1, "the host pulled over no data stream");
  assert.equal(summary.pusherStreams?.worker, 0);
  assert.ok((summary.pusherStreams?.main ?? 0) >= (summary.streams ?? 0));
  assert.deepEqual(await readFile(join(share, "in", "data.bin")), data);
});

test("stream threads dial, offer and serve the data streams, count their bytes, and exit at close", async (t) => {
  if (platformIo.kind !== "native") {
    t.skip("stream threads need the native addon (a descriptor of SRC for each)");
    return;
  }
  const { base, share, writeLink } = await uploadHost(t, "push-streams-threads");
  const src = join(base, "src");
  await mkdir(src);
  const data = pseudoRandomBytes(32 * MiB, "push-streams-threads");
  await writeFile(join(src, "data.bin"), data);
  const client = await TeleportClient.connect(writeLink, { upload: true, transport: "tcp" });
  const dataStreams = client.dataStreams({ encrypted: true });
  const control = await client.upload({ path: "in", source: "", bytes: data.length, files: 1 });
  const index = ChunkIndex.open(join(base, "pusher-home"));
  onCleanup(t, () => index.close());
  const shared = await Share.open(src);
  onCleanup(t, () => shared.close());
  const threads = PusherThreads.start(
    {
      share: shared,
      stateFolder: undefined,
      home: join(base, "pusher-home"),
      streams: dataStreams,
      servedPath: undefined,
      idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
    },
    2,
  );
  const context = pusherContext({
    share: shared,
    secret: dataStreams.spec.link.secret,
    index,
    transport: control.transport,
    idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
    recent: new RecentChunks(threads.recentChunks, 0),
    servedPath: undefined,
  });
  let result: UploadResult | undefined;
  context.onUploadResult = (told) => {
    result = told;
  };
  context.onUploadStreamWanted = (token) => threads.offer(token);
  const session = new HostSession(control, context);
  onCleanup(t, () => {
    session.destroy();
    return threads.close();
  });

  await session.closed;
  assert.equal(result?.code, "", result?.message);
  const summary = JSON.parse(result?.summary ?? "{}") as PushSummary;
  assert.ok((summary.streams ?? 0) >= 1, "the host pulled over no data stream");
  // The threads' last counts are stored as they close, which ends (and awaits) every worker.
  await threads.close();
  assert.ok(threads.served >= (summary.streams ?? 0), `${threads.served} streams served`);
  const sent = threads.bytesSent + control.stats().bytesSent;
  assert.ok(
    threads.bytesSent > 0 && sent >= summary.bytesFromNetwork,
    `${threads.bytesSent} bytes sent by threads`,
  );
  assert.deepEqual(await readFile(join(share, "in", "data.bin")), data);
});
