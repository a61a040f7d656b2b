/**
 * One long-lived, authenticated connection to a peer, multiplexing many concurrent requests and
 * one-way messages over length-prefixed frames, with heartbeats that detect a dead peer.
 *
 * The TLS handshake and the certificate pin check happen before a PeerLink exists (peers.ts,
 * bootstrap); a PeerLink only ever carries bytes from a peer that was already authenticated.
 */
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { EkmError } from '../errors.js';
import {
  decodeJson,
  decodeNamed,
  encodeFrame,
  encodeJson,
  encodeNamed,
  type Frame,
  FrameDecoder,
  FrameKind,
} from './framing.js';

export interface LinkHandlers {
  /** Answers a request; a thrown EkmError travels back to the requester as {code, message}. */
  onRequest(method: string, body: Uint8Array, link: PeerLink): Promise<Uint8Array> | Uint8Array;
  /** A one-way message (protocol envelopes). */
  onMessage?(topic: string, body: Uint8Array, link: PeerLink): void;
}

export interface LinkOptions {
  /** Ping interval; the link is declared dead after `deadAfterMs` without any frame. */
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
}

export const DEFAULT_LINK_OPTIONS: LinkOptions = { heartbeatMs: 1000, deadAfterMs: 4000 };

/** The peer answered a request with an error. */
export class PeerRequestError extends EkmError {
  constructor(code: string, message: string) {
    super('EKM_PEER_ERROR', message, { relayed: { code, httpStatus: 502 } });
  }
}

export class LinkClosedError extends EkmError {
  constructor(peer: string, reason: string) {
    super('EKM_LINK_CLOSED', `link to ${peer} closed: ${reason}`);
  }
}

export class PeerTimeoutError extends EkmError {
  constructor(peer: string, method: string, ms: number) {
    super('EKM_PEER_TIMEOUT', `${peer} did not answer ${method} within ${ms} ms`);
  }
}

interface Pending {
  resolve(body: Uint8Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  method: string;
}

export class PeerLink extends EventEmitter {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly pings = new Map<number, (rtt: number) => void>();
  private nextId = 1;
  private lastHeard = performance.now();
  private heartbeat: NodeJS.Timeout | undefined;
  private closedReason: string | undefined;
  /** Frames that arrive before the owner attached handlers (e.g. during a hello exchange). */
  private handlers: LinkHandlers | undefined;
  private early: Frame[] = [];
  private onHelloFrame: ((frame: Frame) => void) | undefined;
  /** The authenticated peer's role, set once its certificate and hello were accepted. */
  peerRole: 'ep' | 'partner' | 'aux' | undefined;

  constructor(
    readonly socket: TLSSocket,
    /** Who is at the other end, for messages and logs (e.g. "partner 127.0.0.1:7002"). */
    public peerLabel: string,
    private readonly opts: LinkOptions = DEFAULT_LINK_OPTIONS,
  ) {
    super();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(err.message));
    socket.on('close', () => this.close('connection closed'));
    this.heartbeat = setInterval(() => this.tick(), opts.heartbeatMs);
    this.heartbeat.unref();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Starts dispatching requests and messages (frames that arrived earlier are replayed). */
  attach(handlers: LinkHandlers): void {
    this.handlers = handlers;
    const early = this.early;
    this.early = [];
    for (const f of early) this.dispatch(f);
  }

  /** Sends a hello (JSON) frame; used by the handshake before handlers are attached. */
  sendHello(hello: unknown): void {
    this.write(FrameKind.Hello, 0, encodeJson(hello));
  }

  /** Resolves with the peer's hello, or rejects on timeout or close. */
  awaitHello(timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onHelloFrame = undefined;
        reject(new PeerTimeoutError(this.peerLabel, 'hello', timeoutMs));
      }, timeoutMs);
      const onClose = (reason: string): void => {
        clearTimeout(timer);
        reject(new LinkClosedError(this.peerLabel, reason));
      };
      this.once('close', onClose);
      this.onHelloFrame = (frame) => {
        clearTimeout(timer);
        this.off('close', onClose);
        this.onHelloFrame = undefined;
        if (frame.kind === FrameKind.Refused) {
          const why = safeJson(frame.payload) as { reason?: string } | undefined;
          reject(new EkmError('EKM_PEER_REFUSED', `${this.peerLabel} refused this server: ${why?.reason ?? 'no reason given'}`));
          return;
        }
        try {
          resolve(decodeJson(frame.payload));
        } catch {
          reject(new EkmError('EKM_PEER_PROTOCOL', `${this.peerLabel} sent a malformed hello`));
        }
      };
    });
  }

  /** Tells the peer why it is refused, then closes. */
  refuse(reason: string): void {
    this.write(FrameKind.Refused, 0, encodeJson({ reason }));
    // end() flushes the refusal before closing; destroy only if the peer never closes its side.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.close(`refused: ${reason}`, false);
  }

  request(method: string, body: Uint8Array, timeoutMs = 10_000): Promise<Uint8Array> {
    if (this.closedReason) return Promise.reject(new LinkClosedError(this.peerLabel, this.closedReason));
    const id = this.allocId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PeerTimeoutError(this.peerLabel, method, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method });
      this.write(FrameKind.Request, id, encodeNamed(method, body));
    });
  }

  send(topic: string, body: Uint8Array): void {
    if (this.closedReason) throw new LinkClosedError(this.peerLabel, this.closedReason);
    this.write(FrameKind.Message, 0, encodeNamed(topic, body));
  }

  /** Round trip of an empty ping frame, in milliseconds. */
  ping(timeoutMs = 2000): Promise<number> {
    if (this.closedReason) return Promise.reject(new LinkClosedError(this.peerLabel, this.closedReason));
    const id = this.allocId();
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new PeerTimeoutError(this.peerLabel, 'ping', timeoutMs));
      }, timeoutMs);
      this.pings.set(id, () => {
        clearTimeout(timer);
        resolve(performance.now() - t0);
      });
      this.write(FrameKind.Ping, id, new Uint8Array(0));
    });
  }

  close(reason: string, destroy = true): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new LinkClosedError(this.peerLabel, reason));
    }
    this.pending.clear();
    this.pings.clear();
    if (destroy) this.socket.destroy();
    this.emit('close', reason);
  }

  private allocId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffffe ? 1 : this.nextId + 1;
    return id;
  }

  private write(kind: FrameKind, id: number, payload: Uint8Array): void {
    if (this.socket.destroyed) return;
    this.socket.write(encodeFrame(kind, id, payload));
  }

  private tick(): void {
    if (performance.now() - this.lastHeard > this.opts.deadAfterMs) {
      this.close(`no heartbeat for ${this.opts.deadAfterMs} ms`);
      return;
    }
    this.write(FrameKind.Ping, 0, new Uint8Array(0));
  }

  private onData(chunk: Buffer): void {
    this.lastHeard = performance.now();
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.close(`protocol violation: ${(e as Error).message}`);
      return;
    }
    for (const f of frames) this.dispatch(f);
  }

  private dispatch(f: Frame): void {
    switch (f.kind) {
      case FrameKind.Ping:
        this.write(FrameKind.Pong, f.id, new Uint8Array(0));
        return;
      case FrameKind.Pong: {
        const done = this.pings.get(f.id);
        if (done) {
          this.pings.delete(f.id);
          done(0);
        }
        return;
      }
      case FrameKind.Hello:
      case FrameKind.Refused:
        if (this.onHelloFrame) this.onHelloFrame(f);
        else if (f.kind === FrameKind.Refused) this.close('refused by peer');
        return;
      case FrameKind.Response:
      case FrameKind.Error: {
        const p = this.pending.get(f.id);
        if (!p) return;
        this.pending.delete(f.id);
        clearTimeout(p.timer);
        if (f.kind === FrameKind.Response) p.resolve(f.payload);
        else {
          const e = (safeJson(f.payload) ?? {}) as { code?: string; message?: string };
          p.reject(new PeerRequestError(e.code ?? 'EKM_PEER_ERROR', `${this.peerLabel}: ${e.message ?? 'error'}`));
        }
        return;
      }
      case FrameKind.Request:
      case FrameKind.Message:
        if (!this.handlers) {
          this.early.push(f);
          return;
        }
        if (f.kind === FrameKind.Request) this.answer(f);
        else this.deliver(f);
        return;
    }
  }

  private answer(f: Frame): void {
    let named: { name: string; body: Uint8Array };
    try {
      named = decodeNamed(f.payload);
    } catch {
      this.write(FrameKind.Error, f.id, encodeJson({ code: 'EKM_PEER_PROTOCOL', message: 'malformed request' }));
      return;
    }
    Promise.resolve()
      .then(() => this.handlers!.onRequest(named.name, named.body, this))
      .then(
        (body) => this.write(FrameKind.Response, f.id, body),
        (err: unknown) => {
          const code = err instanceof EkmError ? err.code : 'EKM_INTERNAL';
          const message = err instanceof EkmError ? err.message : 'internal error';
          if (!(err instanceof EkmError)) this.emit('handler-error', named.name, err);
          this.write(FrameKind.Error, f.id, encodeJson({ code, message }));
        },
      );
  }

  private deliver(f: Frame): void {
    try {
      const { name, body } = decodeNamed(f.payload);
      this.handlers!.onMessage?.(name, body, this);
    } catch (err) {
      this.emit('handler-error', 'message', err);
    }
  }
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return decodeJson(bytes);
  } catch {
    return undefined;
  }
}
