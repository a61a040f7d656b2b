/**
 * The settings table (src/config/settings.ts): every variable's default, a valid value and each
 * kind of bad value, which stops the start with one line naming the variable; and that no module
 * but settings.ts reads ekm's variables from the environment.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import {
  type BooleanSetting,
  type EnumSetting,
  type IntegerSetting,
  type Setting,
  type Settings,
  SCRIPT_SETTINGS,
  SETTINGS,
  TEST_SWITCHES,
  type TextSetting,
  readSettings,
} from '../../../src/config/settings.js';
import { EkmError } from '../../../src/errors.js';
import { OBJECT_FORMAT_VERSION } from '../../../src/protocols/dprf.js';
import { AUX_SWEEP_MS } from '../../../src/service/key-catalog.js';
import { sourceFiles } from '../../support/source-files.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');

/** Where each variable lands in the typed settings, and a valid value with what it reads as. */
const FIELDS: Record<string, { get: (s: Settings) => unknown; valid: string; reads: unknown }> = {
  EKM_HOME: { get: (s) => s.home, valid: 'srv/ekm/ep', reads: 'srv/ekm/ep' },
  EKM_DB_URL: { get: (s) => s.dbUrl, valid: 'postgres://ekm:pw@db:5432/ekm_ep', reads: 'postgres://ekm:pw@db:5432/ekm_ep' },
  EKM_PROTOCOL_WORKERS: { get: (s) => s.protocolWorkers, valid: '0', reads: 0 },
  EKM_POOL_TARGET: { get: (s) => s.poolTarget, valid: '96', reads: 96 },
  EKM_AES_OBJECT_FORMAT: { get: (s) => s.aesObjectFormat, valid: '1', reads: 1 },
  EKM_TOKEN_TTL_SECONDS: { get: (s) => s.tokenTtlSeconds, valid: '3', reads: 3 },
  EKM_LOGIN_FAILURES: { get: (s) => s.loginFailures, valid: '50', reads: 50 },
  EKM_PASSWORD_CHECKS: { get: (s) => s.passwordChecks, valid: '4', reads: 4 },
  EKM_RECOVERY_BATCH: { get: (s) => s.recoveryBatch, valid: '10000', reads: 10_000 },
  EKM_RECOVERY_PARALLEL: { get: (s) => s.recoveryParallel, valid: '1', reads: 1 },
  UCL_CONF: { get: (s) => s.uclConf, valid: 'client.conf', reads: 'client.conf' },
  UCL_SERVERS: { get: (s) => s.uclServers, valid: '10.0.0.1:8443,10.0.0.2', reads: '10.0.0.1:8443,10.0.0.2' },
  UCL_CLUSTER_CACHE: { get: (s) => s.uclClusterCache, valid: 'client-cluster.json', reads: 'client-cluster.json' },
  EKM_FAILPOINTS: { get: (s) => [...s.test.failpoints], valid: 'proto:dkg:1:after-send@2', reads: [['proto:dkg:1:after-send', 2]] },
  EKM_TEST_VERSION_OVERRIDE: { get: (s) => s.test.versionOverride, valid: '9.9.9', reads: '9.9.9' },
  EKM_DEBUG: { get: (s) => s.test.debug, valid: 'yes', reads: true },
  EKM_AUX_SWEEP_MS: { get: (s) => s.test.auxSweepMs, valid: '300', reads: 300 },
  EKM_DAEMON: { get: (s) => s.test.daemon, valid: '1', reads: true },
};

const READ: readonly Setting[] = [...SETTINGS, ...TEST_SWITCHES];

/** What readSettings gives for an unset variable. */
function defaultOf(s: Setting): unknown {
  if (s.name === 'EKM_AES_OBJECT_FORMAT') return Number(s.default);
  if (s.name === 'EKM_FAILPOINTS') return [];
  return s.default;
}

/** Asserts that `env` stops the start with EKM_BAD_SETTING and one line matching `message`. */
function assertRefused(env: Record<string, string>, message: RegExp): void {
  assert.throws(
    () => readSettings(env),
    (e: unknown) => {
      assert.ok(e instanceof EkmError);
      assert.equal(e.code, 'EKM_BAD_SETTING');
      assert.equal(e.exitCode, 1);
      assert.match(e.message, message);
      assert.doesNotMatch(e.oneLine(), /\n/);
      return true;
    },
    JSON.stringify(env),
  );
}

function badIntegers(s: IntegerSetting): string[] {
  return ['abc', '1.5', '-1', '0x10', '1e3', ' 2', '2 ', '+2', String(s.min - 1), String(s.max + 1), '99999999999999999999'];
}

describe('settings table', () => {
  it('names each variable once, in upper case, across the three tables', () => {
    const names = [...SETTINGS, ...SCRIPT_SETTINGS, ...TEST_SWITCHES].map((s) => s.name);
    assert.equal(new Set(names).size, names.length);
    for (const n of names) assert.match(n, /^(EKM|UCL)_[A-Z0-9_]+$/);
  });

  it('has a typed field for every variable ekm reads, and no other', () => {
    assert.deepEqual(READ.map((s) => s.name).sort(), Object.keys(FIELDS).sort());
  });

  it('says who reads each variable and what it means, in one paragraph', () => {
    for (const s of [...SETTINGS, ...SCRIPT_SETTINGS, ...TEST_SWITCHES]) {
      assert.ok(s.readBy.length > 0, s.name);
      assert.ok(s.meaning.length > 20 && !s.meaning.includes('\n'), s.name);
      if (s.type === 'integer') assert.ok(s.min <= s.default && s.default <= s.max && s.unit, s.name);
      if (s.type === 'enum') assert.ok(s.values.includes(s.default), s.name);
    }
  });

  it('keeps the defaults of the code that used to read the variables itself', () => {
    const d = readSettings({});
    assert.equal(d.aesObjectFormat, OBJECT_FORMAT_VERSION);
    assert.equal(d.test.auxSweepMs, AUX_SWEEP_MS);
    assert.equal(d.protocolWorkers, 2);
    assert.equal(d.poolTarget, 16);
    assert.equal(d.tokenTtlSeconds, 900);
    assert.equal(d.recoveryBatch, 500);
    assert.equal(d.recoveryParallel, 2);
    assert.equal(d.home, '/var/lib/ekm');
  });
});

for (const s of READ) {
  const field = FIELDS[s.name]!;
  describe(s.name, () => {
    it('unset or empty: the default', () => {
      assert.deepEqual(field.get(readSettings({})), defaultOf(s));
      assert.deepEqual(field.get(readSettings({ [s.name]: '' })), defaultOf(s));
    });

    it(`a valid value (${field.valid})`, () => {
      assert.deepEqual(field.get(readSettings({ [s.name]: field.valid })), field.reads);
    });

    if (s.type === 'integer') {
      it(`the bounds ${s.min} and ${s.max} are allowed`, () => {
        assert.equal(field.get(readSettings({ [s.name]: String(s.min) })), s.min);
        assert.equal(field.get(readSettings({ [s.name]: String(s.max) })), s.max);
      });
      for (const bad of badIntegers(s)) {
        it(`refuses ${JSON.stringify(bad)} with one line naming it`, () => {
          const shown = JSON.stringify(bad.slice(0, 40)).replace(/[+.]/g, '\\$&');
          assertRefused({ [s.name]: bad }, new RegExp(`^${s.name} must be an integer from ${s.min} to ${s.max}, got ${shown}$`));
        });
      }
    }
    if (s.type === 'enum') {
      for (const bad of ['3', 'two', '01', ' 1']) {
        it(`refuses ${JSON.stringify(bad)} with one line naming it`, () => {
          assertRefused({ [s.name]: bad }, new RegExp(`^${s.name} must be ${(s as EnumSetting).values.join(' or ')}, got "${bad}"$`));
        });
      }
    }
    if (s.type === 'boolean') {
      it('reads 1/true/yes/on and 0/false/no/off, in any case', () => {
        for (const v of ['1', 'true', 'YES', 'On']) assert.equal(field.get(readSettings({ [s.name]: v })), true, v);
        for (const v of ['0', 'false', 'No', 'OFF']) assert.equal(field.get(readSettings({ [s.name]: v })), false, v);
      });
      for (const bad of ['maybe', '2', 'y']) {
        it(`refuses ${JSON.stringify(bad)} with one line naming it`, () => {
          assertRefused(
            { [s.name]: bad },
            new RegExp(`^${(s as BooleanSetting).name} must be one of 1, true, yes, on, 0, false, no, off, got "${bad}"$`),
          );
        });
      }
    }
    // EKM_FAILPOINTS has its own parser and code (the last test of 'a bad value').
    if ((s.type === 'string' || s.type === 'path' || s.type === 'url') && s.name !== 'EKM_FAILPOINTS') {
      it('refuses a value of two lines', () => {
        const secret = (s as TextSetting).secret === true;
        assertRefused(
          { [s.name]: 'a\nb' },
          new RegExp(`^${s.name} must be one line.*, ${secret ? '\\(its value is not shown' : 'got "a\\\\nb"'}`),
        );
      });
    }
  });
}

describe('a bad value', () => {
  it('of a secret is never shown', () => {
    const url = 'postgres://ekm:Secret-pw-1@db:5432/ekm\nx';
    assert.throws(
      () => readSettings({ EKM_DB_URL: url }),
      (e: unknown) => e instanceof EkmError && !e.oneLine().includes('Secret-pw-1') && e.message.startsWith('EKM_DB_URL must be'),
    );
  });

  it('says what to do: fix or unset it, or what the setting itself advises', () => {
    assert.throws(
      () => readSettings({ EKM_RECOVERY_BATCH: '0' }),
      (e: unknown) => e instanceof EkmError && e.hint === 'fix or unset EKM_RECOVERY_BATCH (docs/operations.md, Settings)',
    );
    assert.throws(
      () => readSettings({ EKM_AES_OBJECT_FORMAT: '3' }),
      (e: unknown) =>
        e instanceof EkmError &&
        e.oneLine() ===
          'EKM_AES_OBJECT_FORMAT must be 1 or 2, got "3": unset it (new AES objects in format 2), or set 1 while older releases still serve this cluster',
    );
  });

  it('is shown 40 characters at most', () => {
    assertRefused({ EKM_POOL_TARGET: 'x'.repeat(100) }, new RegExp(`got "${'x'.repeat(40)}"$`));
  });

  it('of a failpoint list keeps its own code (EKM_FAILPOINTS)', () => {
    assert.throws(
      () => readSettings({ EKM_FAILPOINTS: 'x@0' }),
      (e: unknown) => e instanceof EkmError && e.code === 'EKM_FAILPOINTS' && /EKM_FAILPOINTS: "x@0"/.test(e.message),
    );
  });

  it('of a variable ekm does not read is not its business', () => {
    assert.equal(readSettings({ EKM_PROTOCOL_SAMPLES: 'abc', EKM_LOCAL_PORT_BASE: 'abc', HOME: '\n' }).protocolWorkers, 2);
  });
});

describe('who reads the environment', () => {
  const files = sourceFiles(join(ROOT, 'src')).map((f) => ({ path: relative(ROOT, f), text: readFileSync(f, 'utf8') }));

  it('no module but src/config/settings.ts reads an EKM_ or UCL_ variable', () => {
    const reads = /\benv\s*(?:\.\s*|\[\s*['"`])(?:EKM|UCL)_/;
    const readers = files.filter((f) => f.path !== join('src', 'config', 'settings.ts') && reads.test(f.text)).map((f) => f.path);
    assert.deepEqual(readers, []);
  });

  it('process.env is only handed to readSettings (the CLI start) and to the daemon it spawns', () => {
    const users = files.filter((f) => /process\.env\b/.test(f.text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ''))).map((f) => f.path);
    assert.deepEqual(users.sort(), [join('src', 'cli', 'run.ts'), join('src', 'server', 'daemon.ts')]);
  });

  it('every EKM_ variable the shell scripts read is in the table', () => {
    const declared = new Set([...SETTINGS, ...SCRIPT_SETTINGS, ...TEST_SWITCHES].map((s) => s.name));
    const scripts = [...readdirSync(join(ROOT, 'bin')).map((f) => join('bin', f)), join('packaging', 'init.d', 'ekm')];
    for (const script of scripts) {
      const text = readFileSync(join(ROOT, script), 'utf8').replace(/^\s*#.*$/gm, '');
      for (const m of text.matchAll(/\$\{?(EKM_[A-Z0-9_]+)/g))
        assert.ok(declared.has(m[1]!), `${script} reads ${m[1]}, which src/config/settings.ts does not declare`);
    }
  });
});
