/**
 * The host's side of LIST: a folder's entries, or with `recursive` its whole tree, as ENTRIES,
 * each folder's in order of their names.
 */

import { EntryBatch, type SendFrame } from "../serve/manifest-stream.js";
import { isWalkFailure, isWalkSkip, type Share } from "../serve/share.js";
import { entriesCodec, MessageType } from "../wire/messages.js";

export async function sendListing(
  share: Share,
  path: string,
  recursive: boolean,
  send: SendFrame,
  signal: AbortSignal,
): Promise<void> {
  // Sorted as `ls` is: a folder's names are read before its first entry is sent.
  const items = recursive
    ? share.walk(path, { signal, sorted: true })
    : share.list(path, { signal, sorted: true });
  const batch = new EntryBatch((entries) => send(MessageType.ENTRIES, entriesCodec, { entries }));
  for (const item of items) {
    if (isWalkFailure(item)) throw item.failure;
    if (isWalkSkip(item)) continue;
    await batch.add(item.entry);
  }
  await batch.flush();
}
