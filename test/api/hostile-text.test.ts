/**
 * Hostile text against the audit chain, on a real in-process triplet: every way text from a
 * request can reach an audit row (the user a login claims, by HTTP Basic and by the token grant;
 * path parameters; bodies) with lone surrogates, NUL and other controls, combining and
 * right-to-left marks, 4-byte characters cut at every position, and very long input. Free text
 * that is not clean is refused with 400 at the edge; what reaches the audit log is stored as it
 * was hashed, so the chain verifies afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiTriplet, assertError, startApiTriplet } from '../support/api-triplet.js';
import Database from 'better-sqlite3';
import type { KeyObject } from 'node:crypto';
import { sign } from 'node:crypto';
import { AuditLog, auditHash } from '../../src/service/audit.js';
import type { AuditEntry } from '../../src/store/store.js';
import { cutCodePoints, isCleanText, safeText } from '../../src/util/text.js';

const FOUR_BYTE = '😀𝔘𐐷'; // three characters outside the BMP: surrogate pairs in UTF-16
const HOSTILE: readonly string[] = [
  '\uD800',
  '\uDFFF',
  'a\uD83D',
  '\uDE00b',
  `${'x'.repeat(63)}😀`, // the pair straddles code unit 64: a UTF-16 cut at 64 leaves a lone half
  ...Array.from({ length: 8 }, (_, i) => `${'y'.repeat(60 + i)}${FOUR_BYTE.repeat(3)}`),
  'nul\u0000inside',
  'esc\u001b[31mred',
  'line\nbreak\rreturn',
  'del\u007f c1\u0085',
  'e\u0301\u0301\u0301 combining',
  'rtl\u202Egnp.exe',
  'isolate\u2066x\u2069',
  'zero\u200Bwidth\uFEFF',
  'ﬁ ligature Å vs Å',
  'z'.repeat(100_000),
  `${'😀'.repeat(5000)}`,
];

/** Percent-encodes `s` as UTF-8, with each lone surrogate as the three bytes a sloppy client would send. */
function encodePathText(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    if (pair) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += `%${(0xe0 | (c >> 12)).toString(16)}%${(0x80 | ((c >> 6) & 0x3f)).toString(16)}%${(0x80 | (c & 0x3f)).toString(16)}`;
    else out += encodeURIComponent(s[i]!);
  }
  return out;
}

describe('hostile text cannot break the audit chain', () => {
  let t: ApiTriplet;
  before(async () => {
    t = await startApiTriplet();
  });
  after(async () => t?.close());

  it('safeText and cutCodePoints never leave half a character, and agree with isCleanText', () => {
    for (const s of HOSTILE) {
      for (const max of [1, 63, 64, 65, 66]) {
        const safe = safeText(s, max);
        assert.ok(isCleanText(safe) && !/[\n\r\t\u202A-\u202E\u2066-\u2069]/.test(safe), JSON.stringify(safe));
        assert.ok(Array.from(safe).length <= max);
        assert.equal(safeText(safe, max), safe, 'idempotent');
        assert.equal(Buffer.from(safe, 'utf8').toString('utf8'), safe, 'survives UTF-8 unchanged');
        assert.ok(Array.from(cutCodePoints(s, max)).length <= max);
      }
    }
  });

  it('logins that claim hostile user names, by Basic and by the token grant', async () => {
    for (const s of HOSTILE) {
      for (const username of [s, `${s}@root`, `so@${s}`, `${s}@${s}`]) {
        const basic = `Basic ${Buffer.from(`${username}:Some-pass-1`, 'utf8').toString('base64')}`;
        const viaBasic = await t.call({ method: 'GET', path: '/me', headers: { authorization: basic } });
        assert.ok(viaBasic.status === 401 || viaBasic.status === 400, String(viaBasic.status));
        const viaToken = await t.call({ method: 'POST', path: '/token', body: { username, password: 'Some-pass-1' } });
        assert.ok(viaToken.status === 401 || viaToken.status === 400, String(viaToken.status));
      }
    }
    const v = await t.root<{ ok: boolean; rows: number; problems: unknown[] }>('GET', '/audit/verify');
    assert.equal(v.status, 200);
    assert.deepEqual(v.body.problems, []);
    assert.equal(v.body.ok, true);
    assert.ok(v.body.rows >= HOSTILE.length * 8, `${v.body.rows} rows`);
  });

  it('hostile text in bodies and path parameters is refused at the edge, or stored as checked', async () => {
    const key = await t.root<{ keyId: string }>('POST', '/keys', { alg: 'ecdsa-p256' });
    assert.equal(key.status, 201);
    for (const s of HOSTILE) {
      const unclean = !isCleanText(s);
      for (const body of [{ name: s }, { description: s }]) {
        const r = await t.root('PATCH', `/keys/${key.body.keyId}`, body);
        if (unclean) assertError(r, 400, 'EKM_BAD_REQUEST', /not well-formed Unicode|control character/);
        else assert.ok(r.status < 500, `${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      }
      const created = await t.root('POST', '/partitions', { name: s, soPassword: 'Some-SO-pass-1' });
      assert.equal(created.status, 400);
      const path = await t.root('GET', `/partitions/${encodePathText(s.slice(0, 2000))}/users`);
      assert.ok(path.status >= 400 && path.status < 500, String(path.status));
      const token = await t.call({ method: 'POST', path: '/token', body: { username: 'so@root', password: s } });
      assert.ok(token.status === 400 || token.status === 401, String(token.status));
    }
    const v = await t.root<{ ok: boolean; problems: unknown[] }>('GET', '/audit/verify');
    assert.deepEqual(v.body.problems, []);
  });

  it('rows an older release stored unlike it hashed them: explained, found, or acknowledged in a signed row', async () => {
    type Verify = { ok: boolean; problems: { seq: number; problem: string }[]; notices: { seq: number; problem: string }[]; acknowledged: { seq: number; by: { actor: string } }[] };
    const verify = async (): Promise<Verify> => (await t.root<Verify>('GET', '/audit/verify')).body;
    const store = t.servers.ep.apiDeps().store;
    // As a release before clean text wrote them: hashed as the JavaScript string, stored as UTF-8.
    const key = await (new AuditLog(store) as unknown as { signingKey(): Promise<{ id: string; privateKey: KeyObject }> }).signingKey();
    const legacy = async (actor: string): Promise<number> => {
      const entry: AuditEntry = { at: new Date().toISOString(), requestId: null, actor, partition: 'root', operation: 'auth.token', keyId: null, result: 'denied', status: 401, client: '127.0.0.1', detail: 'EKM_UNAUTHORIZED' };
      const [rec] = await store.appendAudit([entry], (prev, e) => {
        const hash = auditHash(prev.hash, { ...e, seq: prev.seq + 1 });
        const sig = sign(null, Buffer.concat([Buffer.from('ekm-audit-v1\0', 'utf8'), Buffer.from(hash, 'hex')]), key.privateKey).toString('base64');
        return { hash, sig, keyRef: key.id };
      });
      return rec!.seq;
    };
    const cut = await legacy(`${'x'.repeat(63)}\uD83D@root`); // a pair cut in half at 64 code units
    const sent = await legacy('\uDC00\uD800\uDBFF@root'); // three lone surrogates sent on purpose

    let v = await verify();
    assert.deepEqual(v.notices.map((n) => n.seq), [cut], JSON.stringify(v));
    assert.match(v.notices[0]!.problem, /lone surrogate \(U\+D83D\).*not altered/);
    assert.deepEqual(v.problems.map((p) => p.seq), [sent]);
    assert.match(v.problems[0]!.problem, /\d+ replacement characters .*acknowledge it/);
    assert.equal(v.ok, false);

    assertError(await t.root('POST', '/audit/acknowledge', { row: cut }), 409, 'EKM_AUDIT_NOT_ACKNOWLEDGEABLE');
    assertError(await t.root('POST', '/audit/acknowledge', { row: 999_999 }), 404, 'EKM_NOT_FOUND');
    const ack = await t.root<{ acknowledged: number; digest: string }>('POST', '/audit/acknowledge', { row: sent });
    assert.equal(ack.status, 200);
    // The acknowledgement row is appended once its request was answered (group commit): wait for it.
    for (let i = 0; i < 40 && !(await verify()).acknowledged.some((a) => a.seq === sent); i++) await new Promise((r) => setTimeout(r, 50));
    assertError(await t.root('POST', '/audit/acknowledge', { row: sent }), 409, 'EKM_AUDIT_NOT_ACKNOWLEDGEABLE', /acknowledged already/);
    v = await verify();
    assert.equal(v.ok, true, JSON.stringify(v.problems));
    assert.deepEqual(v.acknowledged.map((a) => [a.seq, a.by.actor]), [[sent, 'so@root']]);

    // The acknowledgement pins the row as it was stored: changed afterwards, it is a problem again.
    const db = new Database(t.servers.ep.paths.sqlite);
    try {
      // As someone with write access to the file would: past the append-only trigger.
      const triggers = db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit' AND sql LIKE '%UPDATE%'").all() as { name: string }[];
      for (const { name } of triggers) db.exec(`DROP TRIGGER "${name}"`);
      db.prepare('UPDATE audit SET client = ? WHERE seq = ?').run('10.0.0.1', sent);
    } finally {
      db.close();
    }
    v = await verify();
    assert.equal(v.ok, false);
    assert.deepEqual(v.problems.map((p) => p.seq), [sent]);
    assert.deepEqual(v.acknowledged, []);
  });
});
