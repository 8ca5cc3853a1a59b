/**
 * Whether a chunk is worth handing to the compressor: not when its file is of a compressed
 * format (by name, or by the magic bytes at its start), nor when a sample of its bytes is
 * nearly as dense as random data. What is left is compressed, and kept only if it saved enough.
 */

/** A compressed chunk is sent only if it is at most this share of the original. */
export const KEEP_RATIO = 0.95;

/** Formats that are compressed already: media, archives, packages, office documents. */
const COMPRESSED_EXTENSIONS = new Set(
  (
    "7z aac apk avi avif br bz2 cab deb dmg docx epub flac gif gz heic jar jpeg jpg lz lz4 lzma " +
    "m4a m4v mkv mov mp3 mp4 mpg odp ods odt ogg opus pdf png pptx rar rpm tbz2 tgz txz webm webp " +
    "whl woff woff2 xlsx xz zip zst"
  ).split(" "),
);

export function hasCompressedExtension(path: string): boolean {
  const dot = path.lastIndexOf(".");
  if (dot < 0 || dot < path.lastIndexOf("/")) return false;
  return COMPRESSED_EXTENSIONS.has(path.slice(dot + 1).toLowerCase());
}

/** Signatures at offset 0 of compressed formats (offset 4 for the ISO media family). */
const MAGIC: readonly (readonly number[])[] = [
  [0x1f, 0x8b], // gzip
  [0x50, 0x4b, 0x03, 0x04], // zip, and the formats built on it
  [0x28, 0xb5, 0x2f, 0xfd], // zstd
  [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], // xz
  [0x42, 0x5a, 0x68], // bzip2
  [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], // 7z
  [0x52, 0x61, 0x72, 0x21], // rar
  [0x89, 0x50, 0x4e, 0x47], // png
  [0xff, 0xd8, 0xff], // jpeg
  [0x47, 0x49, 0x46, 0x38], // gif
  [0x1a, 0x45, 0xdf, 0xa3], // matroska, webm
  [0x4f, 0x67, 0x67, 0x53], // ogg
  [0x66, 0x4c, 0x61, 0x43], // flac
  [0x49, 0x44, 0x33], // mp3 with ID3
];
const FTYP = [0x66, 0x74, 0x79, 0x70]; // mp4, mov, heic, avif: "ftyp" at offset 4

/** Whether the first bytes of a file mark it as a compressed format. */
export function hasCompressedMagic(start: Uint8Array): boolean {
  const startsWith = (signature: readonly number[], at = 0) =>
    start.length >= at + signature.length && signature.every((byte, i) => start[at + i] === byte);
  return MAGIC.some((signature) => startsWith(signature)) || startsWith(FTYP, 4);
}

const SAMPLE_SLICES = 16;
const SLICE_BYTES = 256;
/**
 * Bits per byte above which a sample is taken for compressed or random data: random and gzip
 * output sample at ~7.95, text and binaries at 3-5.3 (docs/decisions.md, "Dense data").
 */
const DENSE_BITS_PER_BYTE = 7.5;

/** Shannon entropy of a sample of `data` (16 slices of 256 bytes spread over it), in bits per byte. */
export function sampleEntropy(data: Uint8Array): number {
  const counts = new Uint32Array(256);
  let total = 0;
  const slices = data.length <= SAMPLE_SLICES * SLICE_BYTES ? 1 : SAMPLE_SLICES;
  const step = Math.floor(data.length / slices);
  for (let s = 0; s < slices; s++) {
    const from = s * step;
    const to = slices === 1 ? data.length : from + SLICE_BYTES;
    for (let i = from; i < to; i++) {
      const byte = data[i] as number;
      counts[byte] = (counts[byte] as number) + 1;
    }
    total += to - from;
  }
  let bits = 0;
  for (const count of counts) {
    if (count === 0) continue;
    const p = count / total;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Whether the bytes look dense enough that compressing them would not pay. */
export function looksIncompressible(data: Uint8Array): boolean {
  return data.length >= SLICE_BYTES && sampleEntropy(data) > DENSE_BITS_PER_BYTE;
}
