/**
 * The client's half of a delta: a chunk rebuilt from its old window and the host's script.
 * Everything in the script came from the network: every block reference, literal length and the
 * total are checked before a byte is copied, and the result is only a candidate until its BLAKE3
 * matches the chunk's hash from the manifest (the caller checks).
 */
import type { DeltaOp } from "./script.js";
import { blockCount } from "./signature.js";

/** The old bytes a signature was made of, and how they were cut. */
export interface SignedWindow {
  bytes: Buffer;
  blockSize: number;
}

/**
 * The chunk of `size` bytes the ops say, or a reason it cannot be (a block out of the window,
 * literals overrun or left over, a length other than `size`).
 */
export function rebuild(
  window: SignedWindow,
  ops: readonly DeltaOp[],
  literals: Buffer,
  size: number,
): Buffer | string {
  const { bytes, blockSize } = window;
  const blocks = blockCount(bytes.length, blockSize);
  const chunk = Buffer.allocUnsafe(size);
  let written = 0;
  let literalAt = 0;
  for (const op of ops) {
    if (op.literal > literals.length - literalAt) return "literal run past the literal bytes";
    if (op.literal > size - written) return "literal run past the chunk's end";
    literals.copy(chunk, written, literalAt, literalAt + op.literal);
    written += op.literal;
    literalAt += op.literal;
    if (op.count === 0) continue;
    if (op.block >= blocks || op.count > blocks - op.block)
      return `blocks ${op.block}+${op.count} out of ${blocks}`;
    const start = op.block * blockSize;
    const end = Math.min(bytes.length, (op.block + op.count) * blockSize);
    if (end - start > size - written) return "copied blocks past the chunk's end";
    bytes.copy(chunk, written, start, end);
    written += end - start;
  }
  if (written !== size) return `script makes ${written} bytes of a ${size}-byte chunk`;
  if (literalAt !== literals.length) return "literal bytes left over";
  return chunk;
}
