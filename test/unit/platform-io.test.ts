/**
 * Each platform primitive, native and portable, on the same inputs: the same bytes out, and
 * where the native one does more (holes found, blocks reserved, a socket option set) that it
 * did. The native half is skipped, saying so, where the addon is not built.
 */
import assert from "node:assert/strict";
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import fc from "fast-check";
import { ErrorCode } from "../../src/errors.js";
import { nativeIo, type PlatformIo, platformIo, portableIo } from "../../src/platform/io.js";
import { native } from "../../src/platform/native.js";
import { tempDir, waitFor } from "../helpers/context.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

const implementations: [string, PlatformIo | undefined][] = [
  ["portable", portableIo],
  ["native", native === undefined ? undefined : nativeIo(native)],
];

it("TELEPORT_NATIVE=0 or a missing addon selects the portable path", () => {
  const expected = process.env.TELEPORT_NATIVE === "0" || native === undefined ? "portable" : "native";
  assert.equal(platformIo.kind, expected);
});

/** A file of `size` bytes with data only at `ranges` (the rest holes). */
function sparseFile(path: string, size: number, ranges: [number, number][]): Buffer {
  const content = Buffer.alloc(size);
  const fd = openSync(path, "w");
  for (const [start, end] of ranges) {
    const data = pseudoRandomBytes(end - start, `${start}`);
    data.copy(content, start);
    writeSync(fd, data, 0, data.length, start);
  }
  closeSync(fd);
  truncateSync(path, size); // the tail past the last data: a hole
  return content;
}

for (const [name, io] of implementations) {
  const skip = io === undefined ? "the native addon is not built here" : false;
  describe(`${name} platform I/O`, { skip }, () => {
    const impl = io as PlatformIo;

    it("copies any range between files, the same bytes as the source", async (t) => {
      const dir = await tempDir(t, `io-${name}`);
      const source = pseudoRandomBytes(3 * MiB + 123, "copy-source");
      const sourcePath = join(dir, "source");
      const sourceFd = openSync(sourcePath, "w+");
      writeSync(sourceFd, source);
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: source.length }),
          fc.integer({ min: 0, max: 2 * MiB }),
          fc.integer({ min: 0, max: MiB }),
          // Where blocks can be shared (XFS, Btrfs: run with TMPDIR there), they are for
          // "aligned" offsets and the whole blocks of "congruent" ones.
          fc.constantFrom("any", "aligned", "congruent"),
          async (from, length, to, alignment) => {
            const sourceOffset = alignment === "aligned" ? from - (from % 4096) : from;
            const block = to - (to % 4096);
            const targetOffset = { any: to, aligned: block, congruent: block + (sourceOffset % 4096) }[
              alignment
            ];
            const targetPath = join(dir, `target-${run++}`);
            const targetFd = openSync(targetPath, "w+");
            try {
              const copied = impl.copyRange(sourceFd, sourceOffset, targetFd, targetOffset, length);
              const expected = source.subarray(sourceOffset, sourceOffset + length);
              assert.equal(copied, expected.length, "fewer bytes only where the source ends");
              const written = readFileSync(targetPath);
              assert.equal(written.length, copied === 0 ? 0 : targetOffset + copied);
              assert.ok(written.subarray(targetOffset).equals(expected));
              assert.ok(
                written.subarray(0, targetOffset).equals(Buffer.alloc(written.length && targetOffset)),
              );
            } finally {
              closeSync(targetFd);
            }
          },
        ),
        { numRuns: 60 },
      );
      closeSync(sourceFd);
    });

    it("finds a sparse file's data ranges (native) or calls it all data (portable)", async (t) => {
      const dir = await tempDir(t, `io-${name}`);
      const path = join(dir, "sparse");
      const ranges: [number, number][] = [
        [MiB, MiB + 64 * 1024],
        [5 * MiB, 6 * MiB],
      ];
      sparseFile(path, 16 * MiB, ranges);
      const fd = openSync(path, "r");
      try {
        const found = [...impl.dataRanges(fd, 16 * MiB)];
        if (impl.kind === "portable") assert.deepEqual(found, [[0, 16 * MiB]]);
        else assert.deepEqual(found, ranges);
        assert.deepEqual([...impl.dataRanges(fd, 0)], []);
      } finally {
        closeSync(fd);
      }
    });

    it("zeroes a range: a hole where the file system punches one, zeros written where not", async (t) => {
      const dir = await tempDir(t, `io-${name}`);
      const path = join(dir, "zeroed");
      const data = pseudoRandomBytes(4 * MiB, "zeroed");
      const fd = openSync(path, "w+");
      try {
        writeSync(fd, data);
        impl.zeroRange(fd, MiB, 2 * MiB);
        impl.zeroRange(fd, 0, 0);
      } finally {
        closeSync(fd);
      }
      const expected = Buffer.from(data);
      expected.fill(0, MiB, 3 * MiB);
      assert.ok(readFileSync(path).equals(expected));
      assert.equal(statSync(path).size, 4 * MiB);
      if (impl.kind === "native") assert.ok(statSync(path).blocks * 512 <= 2 * MiB + 64 * 1024, "punched");
    });

    it("reserves a file's blocks without changing its size (native), or says it cannot", async (t) => {
      const dir = await tempDir(t, `io-${name}`);
      const fd = openSync(join(dir, "prealloc"), "w+");
      try {
        const reserved = impl.preallocate(fd, 0, 8 * MiB);
        const stats = fstatSync(fd);
        assert.equal(stats.size, 0);
        if (impl.kind === "portable") assert.equal(reserved, false);
        else assert.ok(!reserved || stats.blocks * 512 >= 8 * MiB, `${stats.blocks} blocks`);
        impl.adviseSequential(fd); // advice: must not throw
      } finally {
        closeSync(fd);
      }
    });

    it("reads and writes the `user.` xattrs of the open file, wherever its name now leads (portable: none)", async (t) => {
      const dir = await tempDir(t, `io-${name}`);
      mkdirSync(join(dir, "d"));
      mkdirSync(join(dir, "other"));
      writeFileSync(join(dir, "d/f"), "mine");
      writeFileSync(join(dir, "other/f"), "another file of the same name");
      const fd = openSync(join(dir, "d/f"), "r");
      try {
        // The folder swapped for a symlink after the open: the descriptor still holds d/f.
        renameSync(join(dir, "d"), join(dir, "d-moved"));
        symlinkSync("other", join(dir, "d"));
        const tagged = [{ name: "user.kind", value: Buffer.from("note") }];
        const written = impl.writeXattrs(fd, tagged);
        if (impl.kind === "portable") {
          assert.equal(written, false);
          assert.equal(impl.readXattrs(fd), undefined);
          return;
        }
        if (!written) return t.skip(`no user extended attributes on the file system of ${dir}`);
        assert.deepEqual(impl.readXattrs(fd), tagged);
        const other = openSync(join(dir, "d/f"), "r"); // other/f, through the symlink
        try {
          assert.deepEqual(impl.readXattrs(other), []);
        } finally {
          closeSync(other);
        }
        assert.equal(impl.writeXattrs(fd, []), true);
        assert.deepEqual(impl.readXattrs(fd), []);
      } finally {
        closeSync(fd);
      }
    });

    it("sets a TCP socket's congestion control (native) and reads what it measures", async (t) => {
      const { peer } = await socketPair(t);
      const reno = impl.setCongestion(peer, "reno");
      const unknown = impl.setCongestion(peer, "no_such_cc");
      const lowat = impl.setNotSentLowat(peer, 128 * 1024);
      const info = impl.tcpInfo(peer);
      if (impl.kind === "portable") {
        assert.deepEqual([reno, unknown, lowat, info], [undefined, undefined, false, undefined]);
        return;
      }
      assert.equal(reno, "reno");
      assert.equal(unknown, "reno", "an unknown one leaves the one in effect");
      assert.equal(lowat, true);
      assert.ok(info !== undefined && info.rttMs >= 0);
    });

    it("sends frames of a header and a file's bytes to a socket (native: sendfile; portable: none)", async (t) => {
      const { client, peer } = await socketPair(t);
      const sender = impl.openSender(peer);
      if (impl.kind === "portable") {
        assert.equal(sender, undefined);
        return;
      }
      assert.ok(sender !== undefined);
      t.after(() => sender.close());
      const dir = await tempDir(t, "sender");
      const content = pseudoRandomBytes(5 * MiB, "sender");
      const path = join(dir, "file");
      const fd = openSync(path, "w+");
      t.after(() => closeSync(fd));
      writeSync(fd, content);
      const slices = [
        { fd, offset: 0, length: 100 },
        { fd, offset: 3 * MiB + 7, length: 2 * MiB - 7 },
        { fd, offset: 1000, length: 64 * 1024 },
      ];
      const headers = pseudoRandomBytes(3 * 41, "headers");
      const expected = Buffer.concat(
        slices.flatMap((slice, i) => [
          headers.subarray(i * 41, (i + 1) * 41),
          content.subarray(slice.offset, slice.offset + slice.length),
        ]),
      );
      const received = receive(client, expected.length);
      await sender.send(headers, slices);
      assert.ok((await received).equals(expected), "the bytes sent are the headers and the slices");

      // A file shorter than the plan (changed since it was listed): FILE_CHANGED, not a hang.
      const past = receive(client, 8 + 10);
      await assert.rejects(sender.send(Buffer.alloc(8), [{ fd, offset: 5 * MiB - 10, length: 100 }]), {
        code: ErrorCode.FILE_CHANGED,
      });
      await past;
    });

    it("a sender closed while its peer reads nothing fails its send at once", {
      skip: impl.kind === "portable" ? "the portable path has no sender" : false,
    }, async (t) => {
      const { client, peer } = await socketPair(t);
      client.pause();
      const sender = impl.openSender(peer);
      assert.ok(sender !== undefined);
      const dir = await tempDir(t, "sender-close");
      const fd = openSync(join(dir, "file"), "w+");
      t.after(() => closeSync(fd));
      writeSync(fd, pseudoRandomBytes(64 * MiB, "big"));
      const sending = sender.send(Buffer.alloc(8), [{ fd, offset: 0, length: 64 * MiB }]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      sender.close();
      await assert.rejects(sending, { code: ErrorCode.CONNECTION });
      sender.close(); // idempotent
    });

    it("a closed sender gives its descriptors back at once, not when it is collected", {
      skip: impl.kind === "portable" ? "the portable path has no sender" : false,
    }, async (t) => {
      const { peer } = await socketPair(t);
      const before = openDescriptors();
      const sender = impl.openSender(peer);
      assert.ok(sender !== undefined);
      assert.equal(openDescriptors(), before + 2, "the socket's duplicate and the wake-up eventfd");
      sender.close();
      await waitFor(() => openDescriptors() === before, {
        what: `${openDescriptors() - before} descriptors to be closed`,
        timeoutMs: 1000,
      });
    });
  });
}

/** Descriptors this process has open. */
function openDescriptors(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Both ends of a loopback TCP connection, destroyed after the test. */
async function socketPair(t: TestContext): Promise<{ client: Socket; peer: Socket }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const client = connect((server.address() as { port: number }).port, "127.0.0.1");
  await new Promise((resolve) => client.once("connect", resolve));
  const peer = await accepted;
  t.after(() => {
    client.destroy();
    peer.destroy();
    server.close();
  });
  return { client, peer };
}

/** The next `bytes` bytes `socket` receives. */
function receive(socket: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let length = 0;
    const onData = (data: Buffer) => {
      parts.push(data);
      length += data.length;
      if (length < bytes) return;
      socket.off("data", onData);
      const all = Buffer.concat(parts);
      if (all.length > bytes) socket.unshift(all.subarray(bytes));
      resolve(all.subarray(0, bytes));
    };
    socket.on("data", onData);
  });
}
