/**
 * Locking out the rightful link holder: everyone behind one NAT, reverse proxy or SSH tunnel
 * comes from one address (here 127.0.0.1), so wrong secrets from it must slow down guessing
 * without refusing the right secret.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { linkParam, runCli, withLinkParam } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees } from "../helpers/tree.js";

/** The link's secret with its first character changed: well formed, wrong. */
function wrongSecretLink(link: string): string {
  const key = linkParam(link, "key");
  return withLinkParam(link, "key", `${key[0] === "A" ? "B" : "A"}${key.slice(1)}`);
}

test("6 wrong secrets from 127.0.0.1 do not lock the right link out: its pull succeeds", async (t) => {
  const { base, share } = await makeShare(t, "auth-lockout", { "a.txt": "inside the share\n" });
  const host = await hostWithCli(t, { base, share });
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const wrong = wrongSecretLink(host.link);
  for (let i = 0; i < 6; i++) {
    const guessed = await runCli(["pull", wrong, join(base, `guess-${i}`)], env);
    assert.notEqual(guessed.code, 0, "a wrong secret is refused");
    assert.match(guessed.stderr, /TELEPORT_ERR_AUTH/);
  }
  const pulled = await runCli(["pull", host.link, join(base, "dest")], env);
  assert.equal(pulled.code, 0, pulled.stderr);
  await compareTrees(share, join(base, "dest"));
});
