/** The bootstrap scripts' flags, per role, exactly as the seed writes them; every misuse is a usage error. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BOOT_USAGE, MIN_PASSWORD_LENGTH, parseBootArgs } from '../../../src/cluster/boot-args.js';
import { DEFAULT_PEER_PORT } from '../../../src/cluster/names.js';
import { EkmError } from '../../../src/errors.js';

const usage =
  (re: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof EkmError, String(e));
    assert.equal(e.code, 'EKM_USAGE');
    assert.equal(e.exitCode, 2);
    assert.match(e.oneLine(), re);
    return true;
  };

const EP = ['-s', 'ep1:7001', '-p', 'partner1:7002', '-x', 'aux1:7003', '-fips', '-w', 'Root-SO-pass-1'];
const PARTNER = ['-s', 'partner1:7002', '-p', 'ep1:7001', '-x', 'aux1:7003', '-fips'];
const AUX = ['-s', 'aux1:7003', '-e', 'ep1:7001', '-p', 'partner1:7002', '-fips'];

describe('parseBootArgs: EP', () => {
  it('reads the seed command line with defaults', () => {
    const a = parseBootArgs('ep', EP);
    assert.equal(a.role, 'ep');
    assert.deepEqual(a.self, { host: 'ep1', port: 7001 });
    assert.equal(a.selfName, 'ep1:7001');
    assert.deepEqual(a.ep, a.self);
    assert.deepEqual(a.partner, { host: 'partner1', port: 7002 });
    assert.deepEqual(a.aux, { host: 'aux1', port: 7003 });
    assert.deepEqual(a.names, { ep: 'ep1:7001', partner: 'partner1:7002', aux: 'aux1:7003' });
    assert.equal(a.fips, true);
    assert.equal(a.rootSoPassword, 'Root-SO-pass-1');
    assert.equal(a.force, false);
    assert.equal(a.restore, false);
    assert.equal(a.externalDb, false);
    assert.deepEqual(a.extraNames, []);
    assert.equal(a.certYears, 8);
    assert.equal(a.apiPort, undefined);
    assert.equal(a.timeoutSeconds, 300);
  });

  it('takes every EP flag, in any order', () => {
    const a = parseBootArgs('ep', [
      '--timeout',
      '60',
      '-f',
      '-restore',
      '-n',
      'ep1.example.com, 10.0.0.1',
      '-e',
      '5',
      '-externaldb',
      '--api-port',
      '9443',
      ...EP,
    ]);
    assert.equal(a.force, true);
    assert.equal(a.restore, true);
    assert.deepEqual(a.extraNames, ['ep1.example.com', '10.0.0.1']);
    assert.equal(a.certYears, 5);
    assert.equal(a.externalDb, true);
    assert.equal(a.apiPort, 9443);
    assert.equal(a.timeoutSeconds, 60);
    assert.equal(parseBootArgs('ep', [...EP, '--force']).force, true);
  });

  it('uses the default peer port for bare names', () => {
    const a = parseBootArgs('ep', ['-s', 'ep1', '-p', 'partner1', '-x', 'aux1', '-fips', '-w', 'Root-SO-pass-1']);
    assert.equal(a.self.port, DEFAULT_PEER_PORT);
    assert.equal(a.names.partner, 'partner1');
  });

  it('accepts a password that starts with a dash', () => {
    assert.equal(parseBootArgs('ep', ['-w', '-dashing-pw', ...EP.slice(0, -2)]).rootSoPassword, '-dashing-pw');
  });

  it('takes the root SO password from a file (-W, --password-file) or standard input (-w -), never both ways', () => {
    const read: string[] = [];
    const secrets = {
      file: (path: string, flag: string) => (read.push(`${flag} ${path}`), 'From-a-file-1'),
      stdin: () => (read.push('stdin'), 'From-stdin-1'),
    };
    const noW = EP.slice(0, -2);
    assert.equal(parseBootArgs('ep', [...noW, '-W', '/run/secrets/root-so'], secrets).rootSoPassword, 'From-a-file-1');
    assert.equal(parseBootArgs('ep', [...noW, '--password-file', 'pw.txt'], secrets).rootSoPassword, 'From-a-file-1');
    assert.equal(parseBootArgs('ep', [...noW, '-w', '-'], secrets).rootSoPassword, 'From-stdin-1');
    assert.deepEqual(read, ['-W /run/secrets/root-so', '--password-file pw.txt', 'stdin']);
    assert.throws(() => parseBootArgs('ep', [...EP, '-W', 'pw.txt'], secrets), usage(/^ekm_boot_ep\.sh: give -w or -W, not both$/));
    assert.throws(() => parseBootArgs('ep', [...noW, '-W', 'a', '--password-file', 'b'], secrets), usage(/--password-file given twice/));
    assert.throws(() => parseBootArgs('partner', [...PARTNER, '-W', 'pw.txt'], secrets), usage(/-W is not a flag of the partner bootstrap/));
    assert.throws(
      () => parseBootArgs('ep', [...noW, '-w', '-'], { ...secrets, stdin: () => 'short' }),
      usage(new RegExp(`at least ${MIN_PASSWORD_LENGTH} characters`)),
    );
  });

  it('refuses a missing or short password, bad -e, -n, --api-port and --timeout', () => {
    assert.throws(() => parseBootArgs('ep', EP.slice(0, -2)), usage(/^ekm_boot_ep\.sh: -w <root SO password> is required: or -W <file> .*, or -w - from standard input/));
    assert.throws(
      () => parseBootArgs('ep', [...EP.slice(0, -1), 'x'.repeat(MIN_PASSWORD_LENGTH - 1)]),
      usage(new RegExp(`at least ${MIN_PASSWORD_LENGTH} characters`)),
    );
    assert.equal(parseBootArgs('ep', [...EP.slice(0, -1), 'x'.repeat(MIN_PASSWORD_LENGTH)]).rootSoPassword?.length, MIN_PASSWORD_LENGTH);
    assert.throws(
      () => parseBootArgs('ep', [...EP.slice(0, -1), 'e\u0301'.repeat(MIN_PASSWORD_LENGTH / 2)]),
      usage(new RegExp(`at least ${MIN_PASSWORD_LENGTH} characters`)),
      'counted as hashed (NFKC): eight code points, four characters',
    );
    for (const y of ['0', '31', 'ten', '1.5', '-1']) {
      assert.throws(
        () => parseBootArgs('ep', [...EP, '-e', y]),
        usage(/(-e takes the certificate lifetime in whole years \(1-30\)|-e needs a value)/),
        y,
      );
    }
    assert.equal(parseBootArgs('ep', [...EP, '-e', '30']).certYears, 30);
    assert.throws(() => parseBootArgs('ep', [...EP, '-n', 'ok,bad_name']), usage(/^-n: "bad_name" is not a valid host name/));
    assert.throws(() => parseBootArgs('ep', [...EP, '--api-port', '70000']), usage(/^--api-port: port 70000 is out of range/));
    for (const t of ['0', 'abc', '100000']) {
      assert.throws(() => parseBootArgs('ep', [...EP, '--timeout', t]), usage(/--timeout takes seconds \(1-99999\)/), t);
    }
  });
});

describe('parseBootArgs: Partner', () => {
  it('reads -s, -p (the EP), -x, -fips, -restore, -f, -externaldb, --timeout', () => {
    const a = parseBootArgs('partner', [...PARTNER, '-restore', '-f', '-externaldb', '--timeout', '9']);
    assert.deepEqual(a.self, { host: 'partner1', port: 7002 });
    assert.deepEqual(a.partner, a.self);
    assert.deepEqual(a.ep, { host: 'ep1', port: 7001 });
    assert.deepEqual(a.aux, { host: 'aux1', port: 7003 });
    assert.deepEqual([a.restore, a.force, a.externalDb, a.timeoutSeconds], [true, true, true, 9]);
    assert.equal(a.rootSoPassword, undefined);
  });

  it('refuses the EP-only flags, naming the role', () => {
    for (const f of [
      ['-w', 'Root-SO-pass-1'],
      ['-n', 'x'],
      ['-e', '3'],
      ['--api-port', '9443'],
    ]) {
      assert.throws(
        () => parseBootArgs('partner', [...PARTNER, ...f]),
        usage(new RegExp(`^ekm_boot_partner\\.sh: ${f[0]} is not a flag of the partner bootstrap: usage: ekm_boot_partner\\.sh `)),
        f[0],
      );
    }
  });
});

describe('parseBootArgs: Aux', () => {
  it('reads -s, -e (the EP), -p (the Partner), -fips, -f, --timeout', () => {
    const a = parseBootArgs('aux', [...AUX, '-f']);
    assert.deepEqual(a.self, { host: 'aux1', port: 7003 });
    assert.deepEqual(a.aux, a.self);
    assert.deepEqual(a.ep, { host: 'ep1', port: 7001 });
    assert.deepEqual(a.partner, { host: 'partner1', port: 7002 });
    assert.equal(a.force, true);
    assert.equal(a.restore, false);
  });

  it('refuses -restore, -x and -externaldb (an Aux is never restored)', () => {
    for (const f of ['-restore', '-externaldb']) {
      assert.throws(() => parseBootArgs('aux', [...AUX, f]), usage(new RegExp(`${f} is not a flag of the aux bootstrap`)));
    }
    assert.throws(() => parseBootArgs('aux', [...AUX, '-x', 'aux2']), usage(/-x is not a flag of the aux bootstrap/));
  });

  it('needs -e and -p', () => {
    assert.throws(
      () =>
        parseBootArgs(
          'aux',
          AUX.filter((_, i) => i !== 2 && i !== 3),
        ),
      usage(/^ekm_boot_auxiliary\.sh: -e <ep> is required/),
    );
    assert.throws(
      () =>
        parseBootArgs(
          'aux',
          AUX.filter((_, i) => i !== 4 && i !== 5),
        ),
      usage(/-p <partner> is required/),
    );
  });
});

describe('parseBootArgs: errors common to every role', () => {
  const cases: ['ep' | 'partner' | 'aux', string[]][] = [
    ['ep', EP],
    ['partner', PARTNER],
    ['aux', AUX],
  ];

  for (const [role, argv] of cases) {
    it(`${role}: unknown, repeated and value-less flags; missing -s and -fips; duplicate addresses`, () => {
      assert.throws(() => parseBootArgs(role, [...argv, '--bogus']), usage(/unknown argument "--bogus": usage: /));
      assert.throws(() => parseBootArgs(role, [...argv, 'stray']), usage(/unknown argument "stray"/));
      assert.throws(() => parseBootArgs(role, [...argv, '-fips']), usage(/-fips given twice/));
      assert.throws(() => parseBootArgs(role, [...argv, '-s', 'x']), usage(/-s given twice/));
      assert.throws(() => parseBootArgs(role, ['-s']), usage(/-s needs a value/));
      assert.throws(() => parseBootArgs(role, ['-s', '-fips']), usage(/-s needs a value/));
      assert.throws(() => parseBootArgs(role, argv.slice(2)), usage(/-s <self> is required/));
      assert.throws(
        () =>
          parseBootArgs(
            role,
            argv.filter((a) => a !== '-fips'),
          ),
        usage(/-fips is required: this release runs FIPS triplets \(EP, Partner, Aux\); EP \+ Partner pairs are not supported yet/),
      );
      // Two roles on one host:port.
      const same = argv.map((a) => (a === 'aux1:7003' ? 'partner1:7002' : a));
      assert.throws(() => parseBootArgs(role, same), usage(/EP, Partner and Aux must be three different host:port addresses/));
      assert.throws(
        () =>
          parseBootArgs(
            role,
            argv.map((a) => (a === 'ep1:7001' ? 'ep1:99999' : a)),
          ),
        usage(/port 99999 is out of range/),
      );
      assert.ok(BOOT_USAGE[role].includes('-fips'));
    });
  }

  it('-fips without the Aux names what to add', () => {
    assert.throws(
      () =>
        parseBootArgs(
          'ep',
          EP.filter((a) => a !== '-x' && a !== 'aux1:7003'),
        ),
      usage(/^ekm_boot_ep\.sh: -fips needs the Aux server: give -x <aux>\[:port\]/),
    );
    assert.throws(
      () =>
        parseBootArgs(
          'partner',
          PARTNER.filter((a) => a !== '-x' && a !== 'aux1:7003'),
        ),
      usage(/-fips needs the Aux server: give -x/),
    );
  });
});
