/** Root SO and user passwords: scrypt with a random salt; a malformed stored hash never matches. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashPassword, passwordLength, verifyPassword } from '../../../src/crypto/password.js';

describe('password hashes', () => {
  it('verify the password they were made from, and only that', async () => {
    const h = await hashPassword('Root-SO-pass-1');
    assert.match(h, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    assert.equal(await verifyPassword('Root-SO-pass-1', h), true);
    for (const wrong of ['Root-SO-pass-2', 'root-so-pass-1', '']) {
      assert.equal(await verifyPassword(wrong, h), false, wrong);
    }
  });

  it('salt every hash', async () => {
    const [a, b] = await Promise.all([hashPassword('same'), hashPassword('same')]);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword('same', a), true);
    assert.equal(await verifyPassword('same', b), true);
  });

  it('compare Unicode passwords after NFKC normalisation', async () => {
    const h = await hashPassword('caf\u00e9-pass');
    assert.equal(await verifyPassword('cafe\u0301-pass', h), true);
  });

  it('count a password as it is hashed: code points of its NFKC form', () => {
    assert.equal(passwordLength('e\u0301'.repeat(8)), 8, 'eight composed characters');
    assert.equal(passwordLength('e\u0301e\u0301e\u0301e\u0301'), 4, 'eight code points, four characters');
    assert.equal(passwordLength('\ufb03'), 3, 'the ffi ligature is three letters');
    assert.equal(passwordLength('\u{1F511}'.repeat(2)), 2, 'a 4-byte character is one');
  });

  it('verify a hash stored before the length rule counted the NFKC form (hashing is unchanged)', async () => {
    // A stored hash of 'caf\u00e9-pass', kept as a literal: hashing must go on producing it.
    const stored = 'scrypt$32768$8$1$9hGUbtpNopjqYvfv2NF5vA==$oxD8zGsyy+ne6Mjo8aGg2bg3ca9+MuqMpFt1ER/McC8=';
    for (const typed of ['caf\u00e9-pass', 'cafe\u0301-pass']) assert.equal(await verifyPassword(typed, stored), true, typed);
  });

  it('never match a malformed stored hash', async () => {
    const good = await hashPassword('pw-12345678');
    const parts = good.split('$');
    const bad = [
      '',
      'pw-12345678',
      'bcrypt$32768$8$1$' + parts[4] + '$' + parts[5],
      parts.slice(0, 5).join('$'),
      [...parts, 'x'].join('$'),
      ['scrypt', '0', '8', '1', parts[4], parts[5]].join('$'),
      ['scrypt', '-1', '8', '1', parts[4], parts[5]].join('$'),
      ['scrypt', 'abc', '8', '1', parts[4], parts[5]].join('$'),
      ['scrypt', '32768', '8.5', '1', parts[4], parts[5]].join('$'),
      ['scrypt', String(1 << 21), '8', '1', parts[4], parts[5]].join('$'),
      ['scrypt', '32768', '8', '1', parts[4], parts[5]!.slice(0, 20)].join('$'),
      ['scrypt', '32768', '8', '1', parts[4], ''].join('$'),
      ['scrypt', '32768', '8', '1', parts[4], Buffer.alloc(32).toString('base64')].join('$'),
    ];
    for (const stored of bad) assert.equal(await verifyPassword('pw-12345678', stored), false, stored);
  });
});
