/**
 * Regenerates the docs that show a real run: docs/api.md from the EP's OpenAPI document, and the
 * "Examples" and "Errors" sections of docs/cli.md. Starts a local triplet in a scratch folder
 * (bin/ekm-local-triplet), runs every example with bash, and writes each command with its real
 * output and exit code. The random root SO password is shown as `RootSOpass1`. First it regenerates
 * docs/operations.md's error-code table, which needs no triplet (scripts/gen-error-table.ts alone
 * does only that). docs/api.md alone: scripts/gen-api-doc.ts, without a running cluster.
 *   node --import tsx scripts/gen-docs.ts
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type OpenApiDoc, openApiMarkdown } from '../src/api/openapi-markdown.js';
import { writeErrorTable } from './gen-error-table.js';

const ROOT = resolve(import.meta.dirname, '..');
const DOC = join(ROOT, 'docs', 'cli.md');
const API_DOC = join(ROOT, 'docs', 'api.md');
const PORT_BASE = 27600;
const ALICE = '-p codesign --user alice -w Alice-pass-1';

/** [heading, command]; `$PW` is the root SO password. Files are written in the scratch folder. */
const EXAMPLES: readonly (readonly [string, string])[] = [
  ['ucl version', 'ucl version'],
  ['ucl partition create', 'ucl partition create -p codesign -w $PW -s Codesign-SO-1'],
  ['ucl partition create --fips-req', 'ucl partition create -p payments --fips-req -w $PW -s Payments-SO-1'],
  ['ucl partition list', 'ucl partition list -w $PW'],
  ['ucl user create', 'ucl user create -n alice -d Alice-pass-0 --role user -p codesign -w Codesign-SO-1'],
  ['ucl user create (an auditor)', 'ucl user create -n audrey -d Audrey-pass-1 --role auditor -p codesign -w Codesign-SO-1'],
  ['ucl user list', 'ucl user list -p codesign -w Codesign-SO-1'],
  ['ucl user change-pwd', 'ucl user change-pwd -p codesign --user alice -w Alice-pass-0 -d Alice-pass-1'],
  ['ucl generate -t ECC --curve p256', `ucl generate -t ECC --curve p256 -n signer --desc "release signing" -o signer.pub.pem ${ALICE}`],
  ['ucl generate -t EDDSA', `ucl generate -t EDDSA -n ed-signer ${ALICE}`],
  [
    'ucl generate --not-after (from then on, none of the three servers signs with it)',
    `ucl generate -t ECC --curve p256 -n signer-2027 --not-after 2027-12-31T23:59:59Z ${ALICE} && ucl show -n signer-2027 ${ALICE}`,
  ],
  ['ucl generate -t AES', `ucl generate -t AES -n files --desc "file encryption" ${ALICE}`],
  ['ucl generate (FIPS-only partition refuses secp256k1)', 'ucl generate -t ECC --curve secp256k1 -p payments -w Payments-SO-1'],
  ['ucl import (an existing RSA key is split into shares)', `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out legacy.pem 2>/dev/null && ucl import -i legacy.pem -n legacy-rsa --desc "from the old HSM" ${ALICE}`],
  ['ucl import (a public key: it verifies, it never signs)', `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out vendor.key 2>/dev/null && openssl pkey -in vendor.key -pubout -out vendor.pub && ucl import -i vendor.pub -n vendor ${ALICE}`],
  ['verify a vendor signature with the imported key', `printf 'release 1.0' > data.txt && openssl dgst -sha256 -sign vendor.key -out vendor.sig data.txt && ucl verify -n vendor -i data.txt -s vendor.sig ${ALICE}`],
  ['ucl list', `ucl list ${ALICE}`],
  ['ucl list -t ECC', `ucl list -t ECC ${ALICE}`],
  ['ucl show', `ucl show -n signer ${ALICE}`],
  ['ucl sign', `printf 'release 1.0' > data.txt && ucl sign -n signer --hash sha256 -i data.txt -o data.sig ${ALICE}`],
  ['verify with openssl', 'openssl dgst -sha256 -verify signer.pub.pem -signature data.sig data.txt'],
  ['ucl sign --out-format BASE64', `ucl sign -n signer -i data.txt -o data.sig.b64 --out-format BASE64 ${ALICE}`],
  ['ucl verify', `ucl verify -n signer -i data.txt -s data.sig ${ALICE}`],
  ['ucl export', `ucl export -n signer -o exported.pem ${ALICE}`],
  ['ucl encrypt (AES, with an encryption context)', `printf 'tenant=42' > context && ucl encrypt -n files -i data.txt -o data.ekm --aad context ${ALICE}`],
  ['ucl decrypt (the AES object names its key)', `ucl decrypt -i data.ekm -o data.out --aad context ${ALICE} && cat data.out && echo`],
  ['ucl encrypt and decrypt (RSA OAEP)', `ucl encrypt -n legacy-rsa -i data.txt -o data.rsa ${ALICE} && ucl decrypt -n legacy-rsa -i data.rsa -o data.rsa.out ${ALICE}`],
  ['ucl update (rename, deactivate)', `ucl update -n ed-signer --new-name ed-signer-2025 --state deactivated ${ALICE}`],
  ['ucl delete (the partition\'s SO)', 'ucl delete -n ed-signer-2025 -y -p codesign -w Codesign-SO-1'],
  ['ucl list --state destroyed', `ucl list --state destroyed ${ALICE}`],
  ['ucl user delete', 'ucl user delete -n audrey -y -p codesign -w Codesign-SO-1'],
  ['ucl partition delete (refused: it holds keys)', 'ucl partition delete -p codesign -y -w $PW'],
  ['ucl audit verify', 'ucl audit verify -w $PW'],
];

const ERRORS: readonly (readonly [string, string])[] = [
  ['wrong password', 'ucl list -p codesign --user alice -w not-her-password'],
  ['missing input file', `ucl sign -n signer -i nosuch.txt -o x.sig ${ALICE}`],
  ['a user may not create users', `ucl user create -n eve -d Eve-pass-123 ${ALICE}`],
  ['no such key in the partition', `ucl sign -n no-such-key -i data.txt -o x.sig ${ALICE}`],
  ['a name that is taken', `ucl generate -t ECC -n signer ${ALICE}`],
  ['a deactivated key does not sign', `ucl update -n signer --state deactivated ${ALICE} >/dev/null && ucl sign -n signer -i data.txt -o x.sig ${ALICE}`],
  ['the wrong encryption context', `ucl decrypt -i data.ekm -o x.out ${ALICE}`],
  ['a user may not destroy keys', `ucl delete -n legacy-rsa -y ${ALICE}`],
  ['delete without -y and no terminal', 'ucl delete -n legacy-rsa -p codesign -w Codesign-SO-1'],
  ['no -w and no terminal', 'ucl partition list'],
];

function sh(cmd: string, cwd: string, env: Record<string, string>): { out: string; code: number } {
  const r = spawnSync('bash', ['-c', `${cmd} 2>&1`], { cwd, env: { ...process.env, ...env, PATH: `${join(ROOT, 'bin')}:${process.env.PATH}` }, encoding: 'utf8' });
  return { out: r.stdout, code: r.status ?? 1 };
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-gen-docs-'));
  const env = { EKM_LOCAL_DIR: join(dir, 'triplet'), EKM_LOCAL_PORT_BASE: String(PORT_BASE) };
  try {
    const up = sh(`${join(ROOT, 'bin', 'ekm-local-triplet')}`, dir, env);
    if (up.code !== 0) throw new Error(`local triplet did not start:\n${up.out}`);
    const pw = readFileSync(join(dir, 'triplet', 'root-so-password'), 'utf8').trim();
    const uclEnv = { EKM_HOME: join(dir, 'triplet', 'ep') };
    const section = (items: readonly (readonly [string, string])[]): string[] =>
      items.flatMap(([heading, cmd]) => {
        const r = sh(cmd.replaceAll('$PW', pw), dir, uclEnv);
        const shown = cmd.replaceAll('$PW', 'RootSOpass1');
        const out = r.out.replaceAll(pw, 'RootSOpass1').replaceAll(dir, '.').trimEnd();
        return [`### ${heading}`, '', '```console', `$ ${shown}`, ...(out ? [out] : []), `(exit ${r.code})`, '```', ''];
      });
    const examples = [
      '## Examples',
      '',
      `Real output from a local triplet (\`EKM_LOCAL_PORT_BASE=${PORT_BASE} bin/ekm-local-triplet\`, \`ucl\` run with \`EKM_HOME\` set to its EP), regenerated by \`node --import tsx scripts/gen-docs.ts\`; the root SO password is shown as \`RootSOpass1\`.`,
      '',
      ...section(EXAMPLES),
      '## Errors',
      '',
      ...section(ERRORS),
    ];
    const openapi = sh(`curl -sk https://127.0.0.1:${PORT_BASE + 43}/api/v1/openapi.json`, dir, {});
    writeFileSync(API_DOC, openApiMarkdown(JSON.parse(openapi.out) as OpenApiDoc));
    const doc = readFileSync(DOC, 'utf8');
    const head = doc.slice(0, doc.indexOf('## Examples'));
    writeFileSync(DOC, `${head}${examples.join('\n').trimEnd()}\n`);
  } finally {
    sh(`${join(ROOT, 'bin', 'ekm-local-triplet')} stop`, dir, env);
    rmSync(dir, { recursive: true, force: true });
  }
}

await writeErrorTable();
main();
