/**
 * ekm's P-256 hash to curve (src/crypto/p256-hash-to-curve.ts) against RFC 9380's vectors
 * (J.1.1, suite P256_XMD:SHA-256_SSWU_RO_) and against noble's implementation on random inputs,
 * including the DPRF's own DST: the AES keys derived from it must never change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { p256_hasher } from '@noble/curves/nist.js';
import { p256HashToCurve, p256HashToCurveBatch } from '../../../src/crypto/p256-hash-to-curve.js';
import { DPRF_DST } from '../../../src/protocols/dprf.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const RFC_DST = 'QUUX-V01-CS02-with-P256_XMD:SHA-256_SSWU_RO_';

describe('P-256 hash to curve (RFC 9380)', () => {
  it('gives the RFC 9380 J.1.1 points', () => {
    const vectors = [
      {
        msg: '',
        x: '2c15230b26dbc6fc9a37051158c95b79656e17a1a920b11394ca91c44247d3e4',
        y: '8a7a74985cc5c776cdfe4b1f19884970453912e9d31528c060be9ab5c43e8415',
      },
      {
        msg: 'abc',
        x: '0bb8b87485551aa43ed54f009230450b492fead5f1cc91658775dac4a3388a0f',
        y: '5c41b3d0731a27a7b14bc0bf0ccded2d8751f83493404c84a88e71ffd424212e',
      },
    ];
    for (const v of vectors) {
      const P = p256HashToCurve(new TextEncoder().encode(v.msg), RFC_DST);
      assert.equal(hex(P.toBytes(false)), `04${v.x}${v.y}`, `msg ${JSON.stringify(v.msg)}`);
    }
  });

  it("equals noble's hashToCurve on random messages, with the RFC's DST, the DPRF's and one over 255 bytes (RFC 9380 5.3.3)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(RFC_DST, DPRF_DST, 'D'.repeat(300)), (msg, DST) => {
        const ours = p256HashToCurve(msg, DST);
        const noble = p256_hasher.hashToCurve(msg, { DST });
        assert.equal(hex(ours.toBytes()), hex(noble.toBytes()));
      }),
      { numRuns: 300 },
    );
  });

  it('a batch gives each message its own point, affine (Z = 1)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 100 }), { minLength: 1, maxLength: 20 }), (msgs) => {
        const batch = p256HashToCurveBatch(msgs, DPRF_DST);
        assert.equal(batch.length, msgs.length);
        batch.forEach((P, i) => {
          assert.equal(P.Z, 1n);
          assert.ok(P.equals(p256_hasher.hashToCurve(msgs[i]!, { DST: DPRF_DST })));
        });
      }),
      { numRuns: 50 },
    );
  });
});
