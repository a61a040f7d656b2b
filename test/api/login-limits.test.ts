/**
 * What unauthenticated clients can make the EP do, on a real in-process triplet with the limits
 * as shipped (EKM_LOGIN_FAILURES 2/s in bursts of 10 per client address, EKM_PASSWORD_CHECKS 1 at
 * once with 8 waiting): an address that sends wrong passwords is answered 429 before any work
 * while right passwords never count; a flood of checks from many addresses is refused beyond the
 * bounded line; the root SO is never locked, but its checks wait longer after each failure.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Answer, type ApiTriplet, ROOT_SO, assertError, startApiTriplet } from '../support/api-triplet.js';

const token = (t: ApiTriplet, username: string, password: string, remoteAddress: string): Promise<Answer> =>
  t.call({ method: 'POST', path: '/token', body: { username, password }, remoteAddress });
const retryAfter = (a: Answer): number => Number(a.headers['retry-after']);

describe('limits on password checks', () => {
  let t: ApiTriplet;
  before(async () => {
    t = await startApiTriplet({ EKM_LOGIN_FAILURES: '2', EKM_PASSWORD_CHECKS: '1' });
    // The root SO's bearer token, fetched before its failures below (the tests use it throughout).
    assert.equal((await t.root('GET', '/me')).status, 200);
    assert.equal((await t.root('POST', '/partitions', { name: 'lim', soPassword: 'Lim-SO-pass-1' })).status, 201);
    assert.equal((await t.root('POST', '/partitions/lim/users', { name: 'ann', password: 'Ann-pass-123', role: 'user' })).status, 201);
  });
  after(async () => t?.close());

  it('an address that sends wrong passwords waits; right passwords and other addresses do not', async () => {
    // A burst of 10, then 2 a second: about 10 wrong passwords, plus what refilled while they were checked.
    const t0 = performance.now();
    let wrong = 0;
    let limited: Answer | undefined;
    while (!limited) {
      const a = await token(t, `nobody${wrong}@lim`, 'Wrong-pass-1', '10.0.0.1');
      if (a.status === 429) limited = a;
      else assertError(a, 401, 'EKM_UNAUTHORIZED');
      if (a.status === 401) wrong++;
      assert.ok(wrong <= 10 + 2 * ((performance.now() - t0) / 1000) + 1, `${wrong} wrong passwords checked and still no 429`);
    }
    assert.ok(wrong >= 10, `limited after only ${wrong}`);
    assertError(limited, 429, 'EKM_RATE_LIMITED', /10\.0\.0\.1 sent too many wrong passwords/);
    assert.ok(retryAfter(limited) >= 1);
    assert.equal(limited.headers.connection, 'close', 'a held refusal closes its connection: nothing pipelined behind it waits');
    // The refusal was held back until about one wrong password's worth refilled: spend it, and the
    // address's right password waits too, by the grant as by Basic (refused before any work).
    const spent = await token(t, 'nobody@lim', 'Wrong-pass-1', '10.0.0.1');
    assert.ok(spent.status === 401 || spent.status === 429, String(spent.status));
    // A percent-encoded path to the token grant is the token grant (matched by route, not by URL).
    const [viaGrant, viaBasic, encoded] = await Promise.all([
      token(t, 'ann@lim', 'Ann-pass-123', '10.0.0.1'),
      t.call({ method: 'GET', path: '/me', as: ['ann@lim', 'Ann-pass-123'], basic: true, remoteAddress: '10.0.0.1' }),
      t.app.inject({ method: 'POST', url: '/api/v1/%74oken', payload: { username: 'nobody@lim', password: 'Wrong-pass-1' }, remoteAddress: '10.0.0.1' }),
    ]);
    assertError(viaGrant, 429, 'EKM_RATE_LIMITED');
    assertError(viaBasic, 429, 'EKM_RATE_LIMITED');
    assert.equal(encoded.statusCode, 429, encoded.body);
    assert.equal((await token(t, 'ann@lim', 'Ann-pass-123', '10.0.0.2')).status, 200);
    // Right passwords never spend an address's budget.
    for (let i = 0; i < 15; i++) assert.equal((await t.call({ method: 'GET', path: '/me', as: ['ann@lim', 'Ann-pass-123'], basic: true, remoteAddress: '10.0.0.3' })).status, 200);
    // The budget comes back with time (2 a second); the refusal itself was held back up to 1 s.
    await new Promise((r) => setTimeout(r, 1000 * retryAfter(limited) + 100));
    assert.equal((await token(t, 'ann@lim', 'Ann-pass-123', '10.0.0.1')).status, 200);
  });

  it('a flood of password checks from many addresses: one runs, eight wait, the rest are refused at once', async () => {
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => token(t, `flood${i}@lim`, 'Wrong-pass-1', `10.1.0.${i + 1}`)));
    const codes = answers.map((a) => (a.body as { error: { code: string } }).error.code);
    assert.equal(codes.filter((c) => c === 'EKM_UNAUTHORIZED').length, 9, codes.join(' '));
    assert.equal(codes.filter((c) => c === 'EKM_TOO_MANY_LOGINS').length, 21, codes.join(' '));
    for (const a of answers) if (a.status === 429) assert.equal(a.headers['retry-after'], '1');
  });

  it('the root SO is never locked: after five failures in a row its checks wait, twice as long each time', async () => {
    const [so] = ROOT_SO;
    for (let i = 0; i < 5; i++) assertError(await token(t, so, `Wrong-root-${i}`, `10.2.0.${i + 1}`), 401, 'EKM_UNAUTHORIZED');
    const delayed = await token(t, so, ROOT_SO[1], '10.2.0.9');
    assertError(delayed, 429, 'EKM_LOGIN_DELAYED', /next password check waits 1 s/);
    assert.equal(retryAfter(delayed), 1);
    await new Promise((r) => setTimeout(r, 1100));
    assertError(await token(t, so, 'Wrong-root-5', '10.2.0.6'), 401, 'EKM_UNAUTHORIZED');
    assertError(await token(t, so, ROOT_SO[1], '10.2.0.9'), 429, 'EKM_LOGIN_DELAYED', /waits 2 s/);
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal((await token(t, so, ROOT_SO[1], '10.2.0.9')).status, 200);
    // A success ends the delay: the next wrong password is just wrong.
    assertError(await token(t, so, 'Wrong-root-6', '10.2.0.7'), 401, 'EKM_UNAUTHORIZED');
    const row = await t.root<{ locked: boolean; failedLogins: number }>('GET', '/partitions/root/users/so');
    assert.deepEqual([row.body.locked, row.body.failedLogins], [false, 1]);
  });

  it('the root SO: checks queued while one fails do not each get a guess', async () => {
    const [so] = ROOT_SO;
    let delayed: Answer | undefined;
    for (let i = 0; i < 6 && !delayed; i++) {
      const a = await token(t, so, `Wrong-root-${i}`, `10.3.0.${i + 1}`);
      if (a.status === 429) delayed = a;
      else assertError(a, 401, 'EKM_UNAUTHORIZED');
    }
    assert.ok(delayed, 'the root SO waits after five failures in a row');
    assertError(delayed, 429, 'EKM_LOGIN_DELAYED');
    await new Promise((r) => setTimeout(r, 1000 * retryAfter(delayed) + 100));
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => token(t, so, `Wrong-burst-${i}`, `10.3.1.${i + 1}`)));
    const codes = burst.map((a) => (a.body as { error: { code: string } }).error.code);
    assert.equal(codes.filter((c) => c === 'EKM_UNAUTHORIZED').length, 1, codes.join(' '));
    assert.ok(codes.every((c) => ['EKM_UNAUTHORIZED', 'EKM_LOGIN_DELAYED', 'EKM_TOO_MANY_LOGINS'].includes(c)), codes.join(' '));
    await new Promise((r) => setTimeout(r, 4100));
    assert.equal((await token(t, so, ROOT_SO[1], '10.3.2.1')).status, 200);
  });
});
