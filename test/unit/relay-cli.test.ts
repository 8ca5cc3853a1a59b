/**
 * The relay's part of the command line and the pull's report: `relay` and `host --relay` parse
 * their options; a pull's `path` and `bytesByPath` follow the bytes; the progress line says the
 * path off the direct one.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PullStatus } from "../../src/cli/pull-status.js";
import { pathReport } from "../../src/client/pull/summary.js";
import { parsedOptions } from "../helpers/cli.js";

describe("relay on the command line", () => {
  it("relay takes a port, an address, a link file and its bounds", async () => {
    const options = await parsedOptions([
      "relay",
      "--port",
      "7000",
      "--bind",
      "127.0.0.1",
      "--link-file",
      "/tmp/relay-address",
      "--max-hosts",
      "3",
      "--max-connections",
      "50",
      "--host-rate",
      "10M",
    ]);
    assert.deepEqual(options, {
      port: 7000,
      bind: "127.0.0.1",
      linkFile: "/tmp/relay-address",
      maxHosts: 3,
      maxConnections: 50,
      hostRate: 10 * 1024 * 1024,
    });
    assert.deepEqual(await parsedOptions(["relay"]), { port: 0, bind: "0.0.0.0" });
    await assert.rejects(parsedOptions(["relay", "--max-hosts", "0"]));
  });

  it("host --relay is repeatable", async () => {
    const options = await parsedOptions(["host", ".", "--relay", "a.example:1", "--relay", "[::1]:2"]);
    assert.deepEqual(options.relay, ["a.example:1", "[::1]:2"]);
    assert.deepEqual((await parsedOptions(["host", "."])).relay, []);
  });
});

describe("the path a pull's bytes took", () => {
  it("is the one that carried the most, the control connection's chunks on its path", () => {
    assert.deepEqual(pathReport("relay", 1000, { direct: 0, relay: 900, punched: 0 }), {
      path: "relay",
      bytesByPath: { direct: 0, relay: 1000, punched: 0 },
    });
    assert.deepEqual(pathReport("relay", 1000, { direct: 0, relay: 200, punched: 700 }), {
      path: "punched",
      bytesByPath: { direct: 0, relay: 300, punched: 700 },
    });
    assert.deepEqual(pathReport("tcp", 0, undefined), {
      path: "direct",
      bytesByPath: { direct: 0, relay: 0, punched: 0 },
    });
    assert.equal(
      pathReport("relay", 0, undefined).path,
      "relay",
      "nothing moved: the control connection's path",
    );
  });

  it("is said on the progress line off the direct path", () => {
    const status = new PullStatus(() => 0);
    status.observe({ type: "listing", files: 1, bytes: 100, complete: true });
    status.observe({ type: "bytes", done: 10, moved: 10, reused: 0, path: "direct" });
    assert.doesNotMatch(status.line(), /via/);
    status.observe({ type: "bytes", done: 20, moved: 20, reused: 0, path: "relay" });
    assert.match(status.line(), / \| via relay$/);
  });
});
