/**
 * A QR code of a share link, for a phone's camera: drawn with Unicode half blocks (two rows of
 * modules per line) on stderr. uqr is loaded only when one is drawn (docs/decisions.md,
 * "QR codes: uqr").
 */

/** The link as a QR code, one string of lines, with a quiet border of one module. */
export async function linkQrCode(link: string): Promise<string> {
  const { renderUnicodeCompact } = await import("uqr");
  return `${renderUnicodeCompact(link, { border: 1 })}\n`;
}
