/**
 * What `teleport host` says about its clients on stderr: one line per client once all of its
 * connections have closed (its address, what it asked for, the bytes sent to it or, for a push,
 * received from it, and how long it stayed), and each connection's error, except a client's
 * leaving between requests: QUIC reports a connection the client closed as an error, and that
 * is how every pull ends (and the losing attempt of a transport race).
 */
import { ErrorCode } from "../errors.js";
import type { ClientEvent, ClientPeer, PathRequest } from "../host/host.js";
import { formatBytes } from "./progress.js";
import { terminalLine } from "./terminal-text.js";

const VERBS: Record<PathRequest, string> = {
  list: "listed",
  manifest: "pulled",
  read: "read",
  upload: "pushed to",
};
/** Requests named in a client's line; the rest are counted (a client chooses how many it makes). */
const MAX_NAMED_REQUESTS = 5;

/** A client from its first authenticated connection to the close of its last. */
interface ClientVisit {
  address: string;
  openConnections: number;
  startedMs: number;
  /** `pulled "docs"`, each once, at most MAX_NAMED_REQUESTS. */
  requests: string[];
  otherRequests: number;
  /** Whether it pushed: its line gives the bytes received from it, not those sent to it. */
  pushed: boolean;
  bytesSent: number;
  bytesReceived: number;
}

export class ClientLog {
  readonly #visits = new Map<string, ClientVisit>();
  readonly #write: (line: string) => void;
  readonly #now: () => number;

  constructor(write: (line: string) => void, now: () => number = () => performance.now()) {
    this.#write = write;
    this.#now = now;
  }

  observe(event: ClientEvent): void {
    if (event.kind === "authenticated") this.#arrived(event.peer);
    else if (event.kind === "request") this.#asked(event.peer, event.request, event.path);
    else this.#closed(event);
  }

  #arrived(peer: ClientPeer): void {
    const key = visitKey(peer);
    const visit = this.#visits.get(key) ?? {
      address: peer.address,
      openConnections: 0,
      startedMs: this.#now(),
      requests: [],
      otherRequests: 0,
      pushed: false,
      bytesSent: 0,
      bytesReceived: 0,
    };
    visit.openConnections += 1;
    this.#visits.set(key, visit);
  }

  #asked(peer: ClientPeer, request: PathRequest, path: string): void {
    const visit = this.#visits.get(visitKey(peer));
    if (visit === undefined) return;
    if (request === "upload") visit.pushed = true;
    const named = `${VERBS[request]} "${path || "."}"`;
    if (visit.requests.includes(named)) return;
    if (visit.requests.length < MAX_NAMED_REQUESTS) visit.requests.push(named);
    else visit.otherRequests += 1;
  }

  #closed(event: Extract<ClientEvent, { kind: "closed" }>): void {
    const { peer, error } = event;
    // A client that closed with no request open: the end of a pull, or the loser of a transport race.
    const leftBetweenRequests = event.idle && error?.code === ErrorCode.CONNECTION;
    if (error !== undefined && !leftBetweenRequests)
      this.#write(terminalLine(`teleport: client ${peer.address}:${peer.port}: ${error.message}`));
    const key = visitKey(peer);
    const visit = this.#visits.get(key);
    if (!event.authenticated || visit === undefined) return;
    visit.bytesSent += event.bytesSent;
    visit.bytesReceived += event.bytesReceived;
    visit.openConnections -= 1;
    if (visit.openConnections > 0) return;
    this.#visits.delete(key);
    this.#write(terminalLine(describeVisit(visit, (this.#now() - visit.startedMs) / 1000)));
  }
}

/** A pull's data streams share its control connection's client id; a client without one is its connection. */
function visitKey(peer: ClientPeer): string {
  return peer.id ?? `${peer.address}:${peer.port}`;
}

/** `teleport: 10.0.0.7 pulled "docs": 12.3 MiB in 1.52 s`, `... pushed to "in": 1.0 GiB received in 6.20 s` */
function describeVisit(visit: ClientVisit, seconds: number): string {
  const more = visit.otherRequests > 0 ? ` and ${visit.otherRequests} more` : "";
  const asked = visit.requests.length > 0 ? `${visit.requests.join(", ")}${more}` : "connected";
  const bytes = visit.pushed ? `${formatBytes(visit.bytesReceived)} received` : formatBytes(visit.bytesSent);
  return `teleport: ${visit.address} ${asked}: ${bytes} in ${seconds.toFixed(2)} s`;
}
