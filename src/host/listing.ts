/** The host's side of LIST: a folder's entries, or with `recursive` its whole tree, as ENTRIES. */
import { entriesCodec, MessageType } from "../wire/messages.js";
import { EntryBatch, type SendFrame } from "./manifest-stream.js";
import { isWalkFailure, type Share } from "./share.js";

export async function sendListing(
  share: Share,
  path: string,
  recursive: boolean,
  send: SendFrame,
  signal: AbortSignal,
): Promise<void> {
  const items = recursive ? share.walk(path, { signal }) : share.list(path, signal);
  const batch = new EntryBatch((entries) => send(MessageType.ENTRIES, entriesCodec, { entries }));
  for await (const item of items) {
    if (isWalkFailure(item)) throw item.failure;
    await batch.add(item.entry);
  }
  await batch.flush();
}
