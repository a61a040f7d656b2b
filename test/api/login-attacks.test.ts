/**
 * Password checks under attack, on a real in-process triplet: a burst of guesses for one user
 * checks at most the partition's lockout limit of passwords, by every way a password reaches the
 * EP (the token grant, HTTP Basic on any route, the old password of a password change), and a
 * right password inside the burst does not get through once the guesses have locked the user.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Answer, type ApiTriplet, assertError, startApiTriplet } from '../support/api-triplet.js';

type User = { name: string; locked: boolean; failedLogins: number };
const LIMIT = 5;
const BURST = 40;

describe('lockout under a burst of guesses', () => {
  let t: ApiTriplet;
  let n = 0;

  /** A new user of partition `race` (lockout after LIMIT failures), and its password. */
  async function newUser(): Promise<[string, string]> {
    const name = `u${++n}`;
    const password = `Right-pass-${n}`;
    assert.equal((await t.root('POST', '/partitions/race/users', { name, password, role: 'user' })).status, 201);
    return [`${name}@race`, password];
  }
  const userRow = async (who: string): Promise<User> => (await t.root<User>('GET', `/partitions/race/users/${who.split('@')[0]}`)).body;

  /** What a burst did: the answers by code, and the user's row afterwards. */
  async function burst(
    who: string,
    guess: (password: string) => Promise<Answer>,
    right: string,
  ): Promise<{ codes: Map<string, number>; rightAnswer: Answer; row: User }> {
    const wrong = Array.from({ length: BURST }, (_, i) => guess(`Wrong-pass-${i}`));
    const rightAnswer = guess(right);
    const answers = await Promise.all([...wrong, rightAnswer]);
    const codes = new Map<string, number>();
    for (const a of answers) {
      const code = a.status < 300 ? 'ok' : (a.body as { error: { code: string } }).error.code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (a.status === 429) assert.equal(a.headers['retry-after'], '1');
    }
    return { codes, rightAnswer: await rightAnswer, row: await userRow(who) };
  }

  function assertHeld(r: Awaited<ReturnType<typeof burst>>): void {
    // Every refused guess was refused before scrypt ran: LIMIT passwords were checked, no more.
    assert.equal(r.row.failedLogins, LIMIT, JSON.stringify([...r.codes]));
    assert.equal(r.row.locked, true);
    assert.notEqual(r.rightAnswer.status, 200, 'the right password got through a locked account');
    const checked = (r.codes.get('EKM_UNAUTHORIZED') ?? 0) + (r.codes.get('EKM_LOCKED') ?? 0);
    assert.equal(checked + (r.codes.get('EKM_LOGIN_BUSY') ?? 0), BURST + 1, JSON.stringify([...r.codes]));
  }

  before(async () => {
    t = await startApiTriplet();
    const p = await t.root('POST', '/partitions', { name: 'race', soPassword: 'Race-SO-pass-1', maxFailedLogins: LIMIT });
    assert.equal(p.status, 201);
  });
  after(async () => t?.close());

  it('token requests', async () => {
    const [who, right] = await newUser();
    assertHeld(await burst(who, (password) => t.call({ method: 'POST', path: '/token', body: { username: who, password } }), right));
    assertError(await t.call({ method: 'POST', path: '/token', body: { username: who, password: right } }), 401, 'EKM_LOCKED');
  });

  it('HTTP Basic on a key route', async () => {
    const [who, right] = await newUser();
    assertHeld(await burst(who, (password) => t.call({ method: 'GET', path: '/me', as: [who, password], basic: true }), right));
  });

  it('the old password of a password change', async () => {
    const [who, right] = await newUser();
    const token = await t.call<{ access_token: string }>({ method: 'POST', path: '/token', body: { username: who, password: right } });
    const headers = { authorization: `Bearer ${token.body.access_token}` };
    const change = (oldPassword: string): Promise<Answer> =>
      t.call({ method: 'POST', path: '/me/password', headers, body: { oldPassword, newPassword: 'Another-pass-1' } });
    for (let i = 0; i < LIMIT - 1; i++) assertError(await change(`Wrong-pass-${i}`), 401, 'EKM_UNAUTHORIZED', /old password is wrong/);
    assertError(await change('Wrong-pass-last'), 401, 'EKM_LOCKED', /now locked after 5 failed logins/);
    assert.equal((await userRow(who)).locked, true);
  });

  it('a right password resets the count; a few failures do not lock', async () => {
    const [who, right] = await newUser();
    for (let i = 0; i < LIMIT - 1; i++)
      assertError(
        await t.call({ method: 'POST', path: '/token', body: { username: who, password: `Wrong-${i}-pass` } }),
        401,
        'EKM_UNAUTHORIZED',
      );
    assert.equal((await t.call({ method: 'POST', path: '/token', body: { username: who, password: right } })).status, 200);
    assert.deepEqual([(await userRow(who)).failedLogins, (await userRow(who)).locked], [0, false]);
  });

  it('unknown users and partitions are told apart from nothing', async () => {
    assertError(
      await t.call({ method: 'POST', path: '/token', body: { username: 'nobody@race', password: 'Some-pass-1' } }),
      401,
      'EKM_UNAUTHORIZED',
      /^wrong user, partition or password$/,
    );
    assertError(
      await t.call({ method: 'POST', path: '/token', body: { username: 'nobody@nowhere', password: 'Some-pass-1' } }),
      401,
      'EKM_UNAUTHORIZED',
      /^wrong user, partition or password$/,
    );
  });
});
