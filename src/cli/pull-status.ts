/**
 * How far a pull is, folded from its PullEvents, as one line of text: the bar (progress.ts)
 * draws it on a terminal, and it is printed every few seconds where stderr is not one.
 */
import type { BytesEvent, ListingEvent, PullEvent } from "../client/pull.js";
import { TransferRate } from "./transfer-rate.js";
import { formatBytes, formatDuration } from "./units.js";

const NOTHING_DONE: BytesEvent = { type: "bytes", done: 0, moved: 0, reused: 0 };

export class PullStatus {
  readonly #now: () => number;
  readonly #rate = new TransferRate();
  #listing: ListingEvent | undefined;
  #bytes = NOTHING_DONE;
  #files = 0;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  observe(event: PullEvent): void {
    if (event.type === "listing") this.#listing = event;
    else if (event.type === "bytes") {
      this.#bytes = event;
      this.#rate.add(this.#now(), event.moved);
    } else if (event.type === "file-done") this.#files++;
    else if (event.type === "retry") {
      // The next attempt lists and counts from the start again.
      this.#listing = undefined;
      this.#bytes = NOTHING_DONE;
      this.#files = 0;
      this.#rate.reset();
    }
  }

  /** Done bytes over listed bytes, 0 to 1; undefined until something is listed. */
  get fraction(): number | undefined {
    const listed = this.#listing?.bytes;
    if (listed === undefined) return undefined;
    return listed === 0 ? (this.#listing?.complete ? 1 : 0) : Math.min(1, this.#bytes.done / listed);
  }

  /** E.g. `45% | 74.5 MiB / 170.0 MiB | 12.3 MiB/s | ETA 8 s | 3 / 120 files | 20.0 MiB reused`. */
  line(): string {
    const listing = this.#listing;
    const { done, reused } = this.#bytes;
    const rate = this.#rate.perSecond(this.#now());
    const rateText = rate === undefined ? "-- B/s" : `${formatBytes(rate)}/s`;
    if (listing === undefined) return `listing… | ${formatBytes(done)} | ${rateText}`;
    const more = listing.complete ? "" : "+";
    const parts = [
      `${Math.floor((this.fraction ?? 0) * 100)}%`,
      `${formatBytes(done)} / ${formatBytes(listing.bytes)}${more}`,
      rateText,
      `ETA ${this.#eta(listing.bytes - done, rate)}`,
      `${this.#files} / ${listing.files}${more} files`,
    ];
    if (reused > 0) parts.push(`${formatBytes(reused)} reused`);
    // The direct path goes without saying; a relay or a punched path is said.
    const path = this.#bytes.path;
    if (path !== undefined && path !== "direct") parts.push(`via ${path}`);
    if (!listing.complete) parts.push("listing…");
    return parts.join(" | ");
  }

  /** The listed bytes not yet in place (reused ones are in place) at the current rate. */
  #eta(remaining: number, rate: number | undefined): string {
    if (remaining <= 0) return formatDuration(0);
    if (rate === undefined || rate <= 0) return "--";
    return formatDuration(remaining / rate);
  }
}
