/**
 * Every package `npm ci` installs runs on every Node.js ekm declares (package.json `engines.node`):
 * a dependency whose own `engines.node` excludes the lowest of them makes `npm ci` warn, and fail
 * under `--engine-strict`. The check reads package-lock.json, which records each package's engines,
 * so a new or updated dependency that drops that Node.js fails here before it reaches an operator.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import semver from 'semver';

interface LockedPackage {
  readonly version?: string;
  readonly engines?: { readonly node?: string } | readonly string[];
}
interface Lockfile {
  readonly packages: Readonly<Record<string, LockedPackage>>;
}

const lock = JSON.parse(readFileSync(new URL('../../../package-lock.json', import.meta.url), 'utf8')) as Lockfile;
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };

/** The Node.js range a locked package declares, or undefined when it declares none (any Node.js).
 * The old array form of `engines` names no range npm checks. */
function declaredNodeRange(p: LockedPackage): string | undefined {
  if (p.engines === undefined || Array.isArray(p.engines)) return undefined;
  return (p.engines as { readonly node?: string }).node;
}

describe('engines of the locked dependencies', () => {
  const lowest = semver.minVersion(pkg.engines.node);

  it("package.json's engines.node is a range with a lowest version, and package-lock.json records it", () => {
    assert.notEqual(lowest, null);
    assert.equal(declaredNodeRange(lock.packages['']!), pkg.engines.node);
  });

  it(`every dependency accepts the lowest Node.js ekm declares (${pkg.engines.node})`, () => {
    const excluding = Object.entries(lock.packages)
      .filter(([path]) => path !== '')
      .flatMap(([path, p]) => {
        const range = declaredNodeRange(p);
        return range !== undefined && !semver.satisfies(lowest!.version, range) ? [`${path}@${p.version} wants Node.js ${range}`] : [];
      });
    assert.deepEqual(excluding, [], `Node.js ${lowest?.version} is excluded: pin a compatible version (package.json overrides)`);
  });
});
