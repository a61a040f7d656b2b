/**
 * RSA keys' 2-of-3 replicated additive shares (docs/protocols.md §12.1): the share scheme of
 * the RSA family. Dealt at the EP (generated with node:crypto off the event loop, or imported
 * from PKCS#8), split at once, the pieces sent to Partner and Aux over the pinned peer links and
 * the whole key dropped; refreshed with the two-phase, epoch-based commit; given back to a new
 * Aux by EP and Partner, one piece each.
 */
import { createHash, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { PartyId } from '../../crypto/parties.js';
import { decodeEnc, enc, toHex, u32be, u8 } from '../../crypto/encoding.js';
import { rsassaPkcs1v15Verify } from '../../crypto/rsa-padding.js';
import { EkmError } from '../../errors.js';
import type { RefreshKeyEpoch } from '../../protocols/refresh.js';
import {
  PROTO_RSA,
  RSA_ALG_BITS,
  RSA_PIECES_OF,
  RSA_REFRESH_PROTO,
  type RsaAlg,
  type RsaKeyShare,
  type RsaOutput,
  type RsaRefreshKeyState,
  type RsaRefreshOutput,
  checkRsaShare,
  dealRsaKey,
  isRsaAlg,
} from '../../protocols/rsa.js';
import { decodeRequest } from '../../protocols/session-kit.js';
import { KEY_UID_RE } from '../../store/key-records.js';
import type { SessionSpec } from '../protocol-host.js';
import { type RefreshStateOf, refreshStateOf, refreshWritesFor, requireRefreshEpochs, settledRefreshStates } from '../refresh-writes.js';
import { recordToRsaShare, rsaShareToRecord } from '../share-codec.js';
import { type Checkpointed, type FamilyDeps, type ShareScheme, requireEp } from './family.js';
import { publicOnly } from './imported-public-keys.js';
import { noWrites, sessionSpec } from './session-spec.js';

const generateKeyPairAsync = promisify(generateKeyPair);
const rng = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const INSTALL_METHOD = 'rsa.install';
/** EP → Aux: fetch your pieces of this RSA key (Aux re-derivation). */
const AUX_REDERIVE_METHOD = 'rsa.aux-rederive';
/** Aux → EP and Aux → Partner: the one piece of mine that the Aux also holds. */
const PIECE_FOR_AUX_METHOD = 'rsa.piece-for-aux';
const AUX = 3 as const satisfies PartyId;

export class RsaShares implements ShareScheme {
  readonly name = 'rsa';

  constructor(private readonly deps: FamilyDeps) {}

  holds(alg: string): boolean {
    return isRsaAlg(alg);
  }

  /**
   * Generates (or imports) an RSA key and deals it: the one moment a key exists whole, at the EP,
   * for the few milliseconds of the split (docs/security-model.md). Acknowledged only once all
   * three servers stored their share.
   */
  async deal(source: { alg: RsaAlg } | { privateKeyPem: string }): Promise<{ keyId: string; alg: RsaAlg }> {
    requireEp(this.deps.self);
    for (const role of ['partner', 'aux'] as const) {
      if (!this.deps.peers.link(role)) throw new EkmError('EKM_PEER_DOWN', `dealing an RSA key needs the ${role}, which is not connected`);
    }
    const keyId = toHex(randomBytes(8));
    let pem: string;
    if ('alg' in source) {
      const kp = await generateKeyPairAsync('rsa', { modulusLength: RSA_ALG_BITS[source.alg], publicExponent: 65537 });
      pem = kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    } else {
      pem = source.privateKeyPem;
    }
    let dealt: ReturnType<typeof dealRsaKey>;
    try {
      dealt = dealRsaKey(keyId, { privateKey: pem }, rng);
    } catch (e) {
      throw new EkmError('EKM_BAD_KEY', `the RSA private key cannot be imported: ${(e as Error).message}`, {
        hint: 'give an RSA 2048, 3072 or 4096-bit key as PKCS#8 PEM',
      });
    }
    pem = '';
    await Promise.all(
      (
        [
          [2, 'partner'],
          [3, 'aux'],
        ] as const
      ).map(([party, role]) =>
        this.deps.peers.requireLink(role).request(INSTALL_METHOD, encodeRsaRecord(rsaShareToRecord(dealt.shares[party])), 30_000),
      ),
    );
    await this.deps.store.applyKeyWrites([
      { op: 'rsa-key-create', keyId, alg: dealt.shares[1].alg, share: rsaShareToRecord(dealt.shares[1]) },
    ]);
    this.deps.log.info(
      { event: 'rsa_dealt', keyId, alg: dealt.shares[1].alg, imported: !('alg' in source) },
      'RSA key dealt into shares; the whole key was dropped',
    );
    return { keyId, alg: dealt.shares[1].alg };
  }

  /** This server's share of an RSA key at its current epoch. */
  async current(keyId: string): Promise<RsaKeyShare> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`);
    if (row.publicKey) throw publicOnly(keyId, 'sign or decrypt');
    if (!isRsaAlg(row.alg)) throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is a ${row.alg} key, not an RSA key`);
    const cur = (await this.deps.store.getRsaShares(keyId)).find((s) => s.status === 'current' && s.epoch === row.currentEpoch);
    if (!cur) throw new EkmError('EKM_KEY_STATE', `key ${keyId} has no current share on this server`);
    return recordToRsaShare(cur);
  }

  /** The share of an RSA key at `epoch`, if this server holds that epoch (CURRENT or PREVIOUS). */
  async shareAt(keyId: string, epoch: number): Promise<RsaKeyShare> {
    const s = (await this.deps.store.getRsaShares(keyId)).find((x) => x.epoch === epoch && x.status !== 'pending');
    if (!s) throw new EkmError('EKM_KEY_EPOCH', `this server holds no share of RSA key ${keyId} at epoch ${epoch}`);
    return recordToRsaShare(s);
  }

  async refresh(keyIds: readonly string[]): Promise<readonly RefreshKeyEpoch[]> {
    return this.deps.auxShares.withAuxShares(keyIds, async () => {
      requireEp(this.deps.self);
      const states = await this.refreshStates(keyIds);
      for (const k of keyIds) if (!states.has(k)) throw new EkmError('EKM_KEY_NOT_FOUND', `no RSA key ${k}`);
      const out = await this.deps.host.run<RsaRefreshOutput>(
        sessionSpec({ kind: 'rsa-refresh', common: this.deps.identity, states: [...states], keyIds }, RSA_REFRESH_PROTO, rsaRefreshWrites),
      );
      return out.keys;
    });
  }

  /** The RSA refresh of a stored checkpoint, resumed (after a restart, or a session dropped on a failed write). */
  resume(proto: string, cp: Checkpointed): Promise<SessionSpec> | undefined {
    if (proto !== RSA_REFRESH_PROTO || !cp.keys) return undefined;
    return this.resumeRefresh(cp.keys as RefreshKeyEpoch[], cp);
  }

  private async resumeRefresh(keys: RefreshKeyEpoch[], cp: Checkpointed): Promise<SessionSpec> {
    const states = await this.refreshStates(
      keys.map((k) => k.keyId),
      0,
    );
    const resume = { keys, checkpoint: cp.checkpoint };
    return sessionSpec(
      { kind: 'rsa-refresh', common: this.deps.identity, states: [...states], resume },
      RSA_REFRESH_PROTO,
      rsaRefreshWrites,
    );
  }

  /**
   * EP: gives a new (or wiped) Aux its pieces of each RSA key again. The Aux fetches them itself,
   * one from the EP and one from the Partner — never through the EP, which would then hold all
   * three pieces, i.e. d. Each new share is then checked the only way an RSA share can be: the EP
   * and the Aux sign a random digest together and the signature must verify. The caller refreshes
   * the keys afterwards, so that the lost Aux's copy of its pieces becomes worthless.
   */
  async rederiveAux(keyIds: readonly string[]): Promise<{ keyId: string; epoch: number }[]> {
    requireEp(this.deps.self);
    const out: { keyId: string; epoch: number }[] = [];
    for (const keyId of keyIds) {
      const share = await this.current(keyId);
      await this.deps.peers.requireLink('aux').request(AUX_REDERIVE_METHOD, enc(keyId, u32be(share.epoch)), 30_000);
      const digest = new Uint8Array(createHash('sha256').update(randomBytes(32)).digest());
      const signed = await this.deps.host.run<RsaOutput>(
        sessionSpec(
          {
            kind: 'rsa',
            share,
            tripletId: this.deps.tripletId,
            coordinate: { helper: AUX, operation: { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest } },
          },
          PROTO_RSA,
          noWrites,
        ),
      );
      if (signed.kind !== 'signature' || !rsassaPkcs1v15Verify({ n: share.n, e: share.e }, 'sha256', digest, signed.signature)) {
        throw new EkmError('EKM_PROTOCOL_ABORTED', `the Aux's re-derived share of RSA key ${keyId} does not sign`, {
          hint: 'run the re-derivation again; the event is logged',
        });
      }
      out.push({ keyId, epoch: share.epoch });
    }
    this.deps.log.info({ event: 'rsa_aux_rederived', keys: out.length }, 'the Aux holds its RSA pieces again');
    return out;
  }

  registerHelpers(): void {
    const deps = this.deps;
    deps.registerPeerMethod(INSTALL_METHOD, (body, from) => {
      if (from !== 'ep') throw new EkmError('EKM_PEER_PROTOCOL', `only the EP deals RSA shares, not the ${from ?? 'unknown peer'}`);
      return this.install(body);
    });
    deps.registerPeerMethod(AUX_REDERIVE_METHOD, (body, from) => {
      if (from !== 'ep' || deps.self !== AUX)
        throw new EkmError('EKM_PEER_PROTOCOL', `only the EP asks the Aux to re-derive RSA shares, not the ${from ?? 'unknown peer'}`);
      return this.rederiveHere(body);
    });
    deps.registerPeerMethod(PIECE_FOR_AUX_METHOD, (body, from) => {
      // Only to the Aux: each of EP and Partner holds one of the Aux's two pieces, and never the other's.
      if (from !== 'aux' || deps.self === AUX)
        throw new EkmError('EKM_PEER_PROTOCOL', `RSA pieces go to the Aux only, not to the ${from ?? 'unknown peer'}`);
      return this.pieceForAux(body);
    });
    deps.host.register(RSA_REFRESH_PROTO, async (env) => {
      const { inputs } = decodeRequest(RSA_REFRESH_PROTO, env, deps.tripletId);
      const states = await this.refreshStates(inputs.keyIds);
      requireRefreshEpochs(inputs, states, 'RSA key');
      return sessionSpec({ kind: 'rsa-refresh', common: deps.identity, states: [...states] }, RSA_REFRESH_PROTO, rsaRefreshWrites);
    });
  }

  /** The keys' refresh states now (a resumed session: no waiting), or once settled (§5, I3). */
  private refreshStates(keyIds: readonly string[], waitMs = 3000): Promise<Map<string, RsaRefreshKeyState>> {
    return settledRefreshStates(keyIds, (keyId) => this.refreshState(keyId), waitMs);
  }

  private async refreshState(keyId: string): Promise<RefreshStateOf<RsaKeyShare> | undefined> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active' || !isRsaAlg(row.alg)) return undefined;
    return refreshStateOf(await this.deps.store.getRsaShares(keyId), recordToRsaShare);
  }

  /** Aux: fetches its two pieces of one key from EP and Partner and keeps them as its current share. */
  private async rederiveHere(body: Uint8Array): Promise<Uint8Array> {
    const { keyId, epoch } = decodeKeyEpoch(body);
    const parts = await Promise.all(
      (['ep', 'partner'] as const).map(async (role) =>
        recordToRsaShare(decodeRsaRecord(await this.deps.peers.requireLink(role).request(PIECE_FOR_AUX_METHOD, body, 30_000))),
      ),
    );
    const [fromEp, fromPartner] = parts as [RsaKeyShare, RsaKeyShare];
    const same = (k: keyof RsaKeyShare): boolean => fromEp[k] === fromPartner[k];
    if (fromEp.keyId !== keyId || !same('keyId') || !same('alg') || !same('n') || !same('e') || fromEp.epoch !== epoch || !same('epoch')) {
      throw new EkmError('EKM_PEER_PROTOCOL', `EP and Partner disagree on RSA key ${keyId} at epoch ${epoch}`);
    }
    const share: RsaKeyShare = { ...fromEp, partyId: AUX, pieces: { ...fromEp.pieces, ...fromPartner.pieces } };
    try {
      checkRsaShare(share);
    } catch (e) {
      throw new EkmError('EKM_PEER_PROTOCOL', `re-derived RSA share of ${keyId} is malformed: ${(e as Error).message}`);
    }
    // Whatever this Aux held of the key (an older epoch, a half-done refresh) gives way to the new share.
    await this.deps.store.applyKeyWrites([
      { op: 'key-purge', keyId },
      { op: 'rsa-key-create', keyId, alg: share.alg, share: rsaShareToRecord(share) },
    ]);
    return new Uint8Array(0);
  }

  /** EP or Partner: the one current piece of an RSA key that this server and the Aux both hold. */
  private async pieceForAux(body: Uint8Array): Promise<Uint8Array> {
    const { keyId, epoch } = decodeKeyEpoch(body);
    const share = await this.current(keyId);
    if (share.epoch !== epoch) throw new EkmError('EKM_KEY_EPOCH', `RSA key ${keyId} is at epoch ${share.epoch} here, not ${epoch}`);
    const p = RSA_PIECES_OF[AUX].find((x) => RSA_PIECES_OF[this.deps.self].includes(x))!;
    return encodeRsaRecord(rsaShareToRecord({ ...share, partyId: AUX, pieces: { [p]: share.pieces[p]! } }));
  }

  /** Partner / Aux: stores the share the EP dealt to this server. */
  private async install(body: Uint8Array): Promise<Uint8Array> {
    const record = decodeRsaRecord(body);
    const share = recordToRsaShare(record);
    if (share.partyId !== this.deps.self)
      throw new EkmError('EKM_PEER_PROTOCOL', `a share for party ${share.partyId} was sent to party ${this.deps.self}`);
    try {
      checkRsaShare(share);
    } catch (e) {
      throw new EkmError('EKM_PEER_PROTOCOL', `malformed RSA share: ${(e as Error).message}`);
    }
    if (await this.deps.store.getKey(share.keyId)) throw new EkmError('EKM_KEY_EXISTS', `key ${share.keyId} exists`);
    await this.deps.store.applyKeyWrites([{ op: 'rsa-key-create', keyId: share.keyId, alg: share.alg, share: record }]);
    return new Uint8Array(0);
  }
}

const rsaRefreshWrites = refreshWritesFor<RsaKeyShare>(RSA_REFRESH_PROTO, (share) => ({
  op: 'rsa-share-put',
  share: rsaShareToRecord(share),
  status: 'pending',
}));

function encodeRsaRecord(r: ReturnType<typeof rsaShareToRecord>): Uint8Array {
  return enc(r.keyId, r.alg, u32be(r.epoch), u8(r.partyId), r.n, r.e, r.pieces);
}

function decodeRsaRecord(bytes: Uint8Array): ReturnType<typeof rsaShareToRecord> {
  const f = decodeEnc(bytes);
  const text = (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(b);
  if (f.length !== 7 || f[2]!.length !== 4 || f[3]!.length !== 1) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed RSA share record');
  const party = f[3]![0]!;
  if (party !== 1 && party !== 2 && party !== 3) throw new EkmError('EKM_PEER_PROTOCOL', 'bad party id');
  return {
    keyId: text(f[0]!),
    alg: text(f[1]!),
    epoch: new DataView(f[2]!.buffer, f[2]!.byteOffset, 4).getUint32(0),
    partyId: party,
    n: f[4]!,
    e: f[5]!,
    pieces: f[6]!,
  };
}

function decodeKeyEpoch(body: Uint8Array): { keyId: string; epoch: number } {
  const f = decodeEnc(body);
  if (f.length !== 2 || f[1]!.length !== 4) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed RSA re-derivation request');
  const keyId = new TextDecoder().decode(f[0]!);
  if (!KEY_UID_RE.test(keyId)) throw new EkmError('EKM_PEER_PROTOCOL', 'an RSA re-derivation request names a key UID');
  return { keyId, epoch: new DataView(f[1]!.buffer, f[1]!.byteOffset, 4).getUint32(0) };
}
