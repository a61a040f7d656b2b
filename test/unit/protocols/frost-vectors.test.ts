/**
 * RFC 9591 Appendix E test vectors through ekm's FROST core (src/protocols/frost.ts).
 *
 * Source of the bytes: ZcashFoundation/frost `frost-{ed25519,secp256k1,p256}/tests/helpers/
 * vectors.json` (the JSON form of RFC 9591 E.1, E.5, E.4, as docs/protocols.md §13 points
 * to; E.1's group key 15d21ccd…9738673 and signature 154fb694…eb178f07 match the spec's quote)
 * and `frost-secp256k1-tr/tests/helpers/vectors.json` for the BIP340 (TR) suite, whose final
 * signature is frost-rs's 65-byte form 0x02 ‖ x(R) ‖ z (BIP340 is the last 64 bytes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromHex, toHex } from '../../../src/crypto/encoding.js';
import { decodePoint } from '../../../src/crypto/curves.js';
import {
  FROST_SUITES,
  frostAggregate,
  frostCommit,
  frostContext,
  frostSignShare,
  frostVerifyShare,
  type FrostSuiteName,
} from '../../../src/protocols/frost.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';

interface Signer {
  id: number;
  share: string;
  hidingRand: string;
  bindingRand: string;
  hidingNonce: string;
  bindingNonce: string;
  D: string;
  E: string;
  rho: string;
  z: string;
}
interface Vector {
  suite: FrostSuiteName;
  name: string;
  Y: string;
  msg: string;
  signers: [Signer, Signer];
  sig: string;
}

const VECTORS: Vector[] = [
  {
    suite: 'ed25519',
    name: 'RFC 9591 E.1 FROST(Ed25519, SHA-512)',
    Y: '15d21ccd7ee42959562fc8aa63224c8851fb3ec85a3faf66040d380fb9738673',
    msg: '74657374',
    signers: [
      {
        id: 1,
        share: '929dcc590407aae7d388761cddb0c0db6f5627aea8e217f4a033f2ec83d93509',
        hidingRand: '06894e04ee4aceec8619d5f6a0a180e2f47194d2ac306cba586b555e7c48d765',
        bindingRand: '40d6f879ff22e22409f7d808fed81f37118e7d3e4af71c0f44c60207553bcbce',
        hidingNonce: 'ef6599dea4010581a72b3018c37c29a4341d7cab0773e8687ca74dcf14009701',
        bindingNonce: '2baadfa0c69aa60d517ad4751de372a73f9d89cfc39026601f18458cdec12605',
        D: '9b116f12589591a7e23fe8048059ab10ab48e67739e7a2fb3890f61a7999478c',
        E: 'c39b66b7dfccb122da24f13587f9a08c4347cae70046ca15169adf90ba65854d',
        rho: 'ff960a65374e216a0918729b153466016664fa980d409bc3f308daa7acb30d0d',
        z: '60997f0142e43e8005027fe5ab7447dac00d22c2d7ddd9571a02613ba7d81c08',
      },
      {
        id: 3,
        share: 'd3cb090a075eb154e82fdb4b3cb507f110040905468bb9c46da8bdea643a9a02',
        hidingRand: 'fa5d950626782aade9e33fa781376d4888c2d1de7c37518bc248eb818ed0cdde',
        bindingRand: '7459a4d14ded0e365b085271be8dc6600d5b88f3978a2174297ffa32001a5afc',
        hidingNonce: '80f8d9a4b8f9366e1a0b618107c907cd3ee29fa9bb40b4691cc1bde696240005',
        bindingNonce: '2610b664a5a187b4855e87d2ff485bebdf043dc2f161fcd4854cd01dc0276404',
        D: 'e679a2a971748ccfaabead4dbe8ac1def61275c186c79d471e1e45091ad1e687',
        E: 'b2a942478453fabb6bd3181c56ba657413447b4136e1daea2484d396d1a516b3',
        rho: '279d48ec56f16d234c09ea62f3d02ab776ee38e03f66b20f939f1316e13df10f',
        z: '79390e78bc59699c7af831f8f5fb478ec871a85f561a8641b5670ac4443f720f',
      },
    ],
    sig: '154fb694ee7fcb37bf2381d94488c2a84b03b3352ad085feca81ad26d45852b7ecfe971ce4da95c4a95db93ac376b053897fca212ef85f99cf696bffeb178f07',
  },
  {
    suite: 'secp256k1',
    name: 'RFC 9591 E.5 FROST(secp256k1, SHA-256)',
    Y: '02f37c34b66ced1fb51c34a90bdae006901f10625cc06c4f64663b0eae87d87b4f',
    msg: '74657374',
    signers: [
      {
        id: 1,
        share: '08f89ffe80ac94dcb920c26f3f46140bfc7f95b493f8310f5fc1ea2b01f4254c',
        hidingRand: 'bda8e748e599187762cff956f03dc6ea13fc8e04491a0427b7e6e78600f41c52',
        bindingRand: '2ca682429bf05df435b9927b8edb1d748278f3e42fa11ef358e49bbf4a1b780d',
        hidingNonce: '09764379667f9a9fa61928947bd925a7f162b21886b750d3b11c226d16b32f58',
        bindingNonce: 'b2d3f8cb9da70984354c3fc3511b1f6ed21b7205941cb5553565d2ecade8c694',
        D: '0305e62a1d3f57a0b17ade569a3a4043e2a1fc3bd0b102614a8d8cc68e3322ad89',
        E: '03b634c2aed7f85b8eec22e97e5f916ab43a3518821480e15da2af7cffcb060a30',
        rho: '9bee5aef4012de4b94c9fc1a9a9572181079e293bf1d7545a5af0ef86f824a91',
        z: 'ca54b18d7449377cfa680760a5770b9e64e201f7ea36b068effeca5fce2155e5',
      },
      {
        id: 3,
        share: '00e95d59dd0d46b0e303e500b62b7ccb0e555d49f5b849f5e748c071da8c0dbc',
        hidingRand: '70818dd5170672c4a4285fd593d4f222417f941f3118e1244955e7a1098a35d8',
        bindingRand: '74ca2da071ed4a2a6cad5087d6758b48a558ab5861c61117fee05757e4b1309e',
        hidingNonce: '0d92e255e5b42ebc2863f8198d946fc10f388c4983073c18cbb77b88e3bf2e34',
        bindingNonce: '1c7243ce00a499b1e7ce3403e7b731d0c820cf108feb8c5ee7c29b4ef43be5e0',
        D: '036f878da0dc19ba7da9f2d9e795e2674e62ff06c990fc4464cc1ed55a2acce46b',
        E: '025350e2a9e32e7b1fe0161e990623600b2d301b3307641469129cff7936c4d2ce',
        rho: 'cfe0db2197c94cc355b6ab05610f27f4a874898009c8bf007f2a4e2ce2c8306d',
        z: 'da13d054e83052568706a6d161d80f112a6bc3f76aa903c022585ae7e091e65e',
      },
    ],
    sig: '024c1ad4e031872661fa6ebd05dfc7fb30db08b38d79f0edbc82051ae931381bc6a46881e25c7989d3816eae32074f1ab0d49ee908a59713ed5284c6bade7cfb02',
  },
  {
    suite: 'p256',
    name: 'RFC 9591 E.4 FROST(P-256, SHA-256)',
    Y: '023a309ad94e9fe8a7ba45dfc58f38bf091959d3c99cfbd02b4dc00585ec45ab70',
    msg: '74657374',
    signers: [
      {
        id: 1,
        share: '0c9c1a0fe806c184add50bbdcac913dda73e482daf95dcb9f35dbb0d8a9f7731',
        hidingRand: '4a8477d587f118308d3069e63995feec76f5d9b83ab7d9bce2fc8011d3462bb4',
        bindingRand: '62cbcda4d3d0df22b8dcc973714bc50c4ebb12caed8266df5e1a49cb73c0bcff',
        hidingNonce: 'a5d80a9eb6454a912473d129effd1eb6610ab556fbb2d198594947ea87be88bf',
        bindingNonce: '224bf61f1b423a20d1e4e74d6de7f6fe492488067c6f3b36b0aba601ae74eae1',
        D: '0211fe5268b9341f6de336fbb797effb21160bc836be0a7521ba02864019c94e97',
        E: '03022d2adb2825f4233c21e6a182a91078368bc6b6b2736586a016d2656a14937a',
        rho: 'f3524ed2b393ae51a66c8de55b65bea32532d7d90e34a6419ec32ea42201b846',
        z: '3913cccb804dd81498c9f2873ce7f7d39accf7def963ee2e18817955462ca88a',
      },
      {
        id: 3,
        share: '0e80d6e8f6192c003b5488ce1eec8f5429587d48cf001541e713b2d53c09d928',
        hidingRand: 'da6c48369ed5170e8000a3d379c07c426a98620e7f7835334c87721e090188bc',
        bindingRand: 'b9c65da6de960b4c3eea5fb951e51aba852a91b7f893fbf8976c7a945e41d86d',
        hidingNonce: '9a98a4bb403c55b194c470b4f05a11bf240b770e4ef8730c83f737a3308b5f01',
        bindingNonce: '6d18b61b5353af66f9ebee38fda169d7c01f0b2a51fc68ed7a526a79ed87eb86',
        D: '02d4bfd0ce577be72c1e9d1dd981490a15bf56518d194db0b61bfb3deb00c85d21',
        E: '02a03c9990a3f79be07da4531ea8e2e90afbaf74ea31731f6d98113370a003f804',
        rho: 'a44f422051188cb7b48e8a326b961cef99ab1bd47d8425a130794767e7c7bc05',
        z: '9149aa8ac15e6e7481f9e3816135bc9e18de1f5dd1f472073fa00c8ef8e749bb',
      },
    ],
    sig: '02aea65143565d19f2811d6c1d7a7486fdd57dd3f6b08d8653ca260ec0ebe00b61ca5d775641ac46891ac3d6089e1db471b3ab173ccb586035582185e43f13f245',
  },
  {
    suite: 'secp256k1-tr',
    name: 'frost-secp256k1-tr vectors (FROST-secp256k1-SHA256-TR-v1, BIP340)',
    Y: '02f37c34b66ced1fb51c34a90bdae006901f10625cc06c4f64663b0eae87d87b4f',
    msg: '74657374',
    signers: [
      {
        id: 1,
        share: '08f89ffe80ac94dcb920c26f3f46140bfc7f95b493f8310f5fc1ea2b01f4254c',
        hidingRand: 'bda8e748e599187762cff956f03dc6ea13fc8e04491a0427b7e6e78600f41c52',
        bindingRand: '2ca682429bf05df435b9927b8edb1d748278f3e42fa11ef358e49bbf4a1b780d',
        hidingNonce: '58cd30723da418156fe9b71870a118e0bbc3d0353ba7c760f9bbc8d60c3dab29',
        bindingNonce: 'c22289cc43b82ed938d4b2288efb7381c405fb59f5d43bddc543d98838c60b19',
        D: '024e34ab3a7ad6b4563dbfe97e9f1206b3378cceb2502491ed0fb709765e1e5ba8',
        E: '03d4b1f3a61dc67e64dfb4abfccabb712f1f6914a6ec9b67749d171370453192cb',
        rho: '55a3e44879db6daf00c81eb28e828869560c0901f347baff524f1c91a6669604',
        z: '2ffc305d1694fd84108b84d98306a1af807c6ad9bc3a2d8e448a09643202a15b',
      },
      {
        id: 3,
        share: '00e95d59dd0d46b0e303e500b62b7ccb0e555d49f5b849f5e748c071da8c0dbc',
        hidingRand: '70818dd5170672c4a4285fd593d4f222417f941f3118e1244955e7a1098a35d8',
        bindingRand: '74ca2da071ed4a2a6cad5087d6758b48a558ab5861c61117fee05757e4b1309e',
        hidingNonce: 'a4109db0a5db30fac8cd1f4e272ff02e08258928f067d82c63d97279b114514a',
        bindingNonce: 'ce3837bd963f0d81002279f7bb9eefceac64435f638885c2beae6f1dd881fd9e',
        D: '02d768658a1b94225645401a1512b803657770c7a21bf9ccccccfa09930a44951b',
        E: '034570a4e5217ee8770a28401185f50b4fce4d3f3933a3af9df7ab39b42381d0eb',
        rho: '444c1cc7cfe48f4577cce65488f337a9cc8c33dea4cfa986eb590bd8e2b1fa2d',
        z: 'a8c392566ea29e852b4080a028bf5547166c87e703e4fb7136d4ebef65f99b3f',
      },
    ],
    sig: '020c776a9516a77808b70a31e74f1464814a6fcf897fb3a6bd84c7a9a9a7a5bcb8d8bfc2b385379c093bcc0579abc5f6f696e8f2c0c01f28ff7b5ef55397fc3c9a',
  },
];

for (const v of VECTORS) {
  test(`${v.name}: nonces, commitments, binding factors, shares and signature byte-exact`, () => {
    const suite = FROST_SUITES[v.suite];
    const { curve } = suite;
    const Fn = curve.Fn;
    const msg = fromHex(v.msg);
    const rounds = v.signers.map((s) => {
      const rand = [fromHex(s.hidingRand), fromHex(s.bindingRand)];
      const rng = (n: number): Uint8Array => {
        const r = rand.shift()!;
        assert.equal(n, r.length);
        return r;
      };
      const secret = Fn.fromBytes(fromHex(s.share));
      const { nonces, commitment } = frostCommit(suite, s.id, secret, rng);
      assert.equal(toHex(Fn.toBytes(nonces.d)), s.hidingNonce, 'hiding nonce');
      assert.equal(toHex(Fn.toBytes(nonces.e)), s.bindingNonce, 'binding nonce');
      assert.equal(toHex(commitment.D.toBytes()), s.D, 'hiding commitment');
      assert.equal(toHex(commitment.E.toBytes()), s.E, 'binding commitment');
      return { s, secret, nonces, commitment };
    });
    const Y = decodePoint(curve, fromHex(v.Y));
    const ctx = frostContext(suite, Y, rounds.map((r) => r.commitment), msg);
    const zs = rounds.map(({ s, secret, nonces }) => {
      assert.equal(toHex(Fn.toBytes(ctx.rho.get(s.id)!)), s.rho, 'binding factor');
      const z = frostSignShare(ctx, s.id, secret, nonces);
      assert.equal(toHex(Fn.toBytes(z)), s.z, 'signature share');
      assert.ok(frostVerifyShare(ctx, s.id, curve.G.multiply(secret), z), 'verify_signature_share');
      assert.equal(nonces.d, 0n, 'nonces consumed');
      return z;
    });
    const { signature, valid } = frostAggregate(ctx, zs);
    assert.ok(valid);
    const expected = v.suite === 'secp256k1-tr' ? v.sig.slice(2) : v.sig;
    assert.equal(toHex(signature), expected, 'final signature');
    if (v.suite === 'ed25519') assert.ok(ed25519.verify(signature, msg, fromHex(v.Y)));
    if (v.suite === 'secp256k1-tr') assert.ok(schnorr.verify(signature, msg, fromHex(v.Y).subarray(1)));
  });
}
