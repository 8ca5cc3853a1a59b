/** What a receiver is told of a manifest, one event at a time (a pull from its host, a host from its pusher). */
import type { ChunkRef, Entry, EntryError, EntrySkipped, FileBegin, FileEnd } from "../wire/messages.js";

/** One event of a streamed manifest, in the order the host walks the tree. */
export type ManifestEvent =
  | { kind: "entries"; entries: Entry[] }
  | { kind: "file-begin"; entry: FileBegin }
  | { kind: "chunks"; chunks: ChunkRef[] }
  | { kind: "file-end"; digest: FileEnd }
  | { kind: "entry-error"; failure: EntryError }
  | { kind: "entry-skipped"; skipped: EntrySkipped };
