/**
 * Fault injection for tests of the client's defences: given to `Host.start` apart from its
 * options (HostInternals), never set by the CLI, and not part of the library's API (index.ts).
 */
import type { ChunkRequest } from "../wire/messages.js";

export interface HostFaults {
  /** Called with each chunk about to be sent; may change its bytes in place. */
  corruptChunk?: (request: ChunkRequest, data: Buffer) => void;
  /**
   * Awaited before each chunk is sent (to slow a transfer down, or act in the middle of it, such
   * as cutting the connection that carries it).
   */
  beforeChunk?: (request: ChunkRequest, connection: { destroy(): void }) => Promise<void>;
  /** Called with each group of frames as it goes out (compressed, where it was); may change it. */
  beforeSend?: (frames: Buffer) => void;
}

/** What tests may give a host besides its options. */
export interface HostInternals {
  faults?: HostFaults;
}
