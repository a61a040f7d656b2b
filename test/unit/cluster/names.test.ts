/** Server names as the bootstrap flags and client settings take them: host[:port]. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_API_PORT, DEFAULT_PEER_PORT, formatAddress, parsePort, parseServerName } from '../../../src/cluster/names.js';
import { EkmError } from '../../../src/errors.js';

const usage =
  (re: RegExp) =>
  (e: unknown): boolean =>
    e instanceof EkmError && e.code === 'EKM_USAGE' && e.exitCode === 2 && re.test(e.oneLine());

describe('parseServerName', () => {
  it('takes host names, IPv4 and bracketed IPv6, with or without a port', () => {
    assert.deepEqual(parseServerName('ep1', '-s'), { host: 'ep1', port: DEFAULT_PEER_PORT });
    assert.deepEqual(parseServerName('ep1.example.com:7000', '-s'), { host: 'ep1.example.com', port: 7000 });
    assert.deepEqual(parseServerName('  10.0.0.5:1 ', '-s'), { host: '10.0.0.5', port: 1 });
    assert.deepEqual(parseServerName('[::1]:65535', '-s'), { host: '::1', port: 65535 });
    assert.deepEqual(parseServerName('[fe80::1]', '-s'), { host: 'fe80::1', port: DEFAULT_PEER_PORT });
    assert.deepEqual(parseServerName('a-b', '-s'), { host: 'a-b', port: DEFAULT_PEER_PORT });
    assert.equal(parseServerName('ep1', '--server', DEFAULT_API_PORT).port, 8443);
    assert.equal(DEFAULT_PEER_PORT, 6603);
  });

  it('refuses empty names, bad hosts, bare IPv6 and bad ports, naming the flag', () => {
    assert.throws(() => parseServerName('  ', '-p'), usage(/^-p: empty server name: give host\[:port\]$/));
    assert.throws(() => parseServerName('::1', '-x'), usage(/^-x: "::1" is not host\[:port\]: write IPv6 addresses as \[addr\]:port$/));
    for (const bad of ['-ep', 'ep_1', 'ep-', 'a..b', 'ho st', `${'a'.repeat(64)}`, 'ep1.']) {
      assert.throws(() => parseServerName(bad, '-s'), usage(/^-s: ".*" is not a valid host name or IPv4 address$/), bad);
    }
    assert.throws(() => parseServerName('ep1:', '-s'), usage(/"" is not a port number/));
    assert.throws(() => parseServerName('ep1:0', '-s'), usage(/^-s: port 0 is out of range: use 1-65535$/));
    assert.throws(() => parseServerName('ep1:65536', '-s'), usage(/port 65536 is out of range/));
    assert.throws(() => parseServerName('ep1:http', '-s'), usage(/"http" is not a port number/));
    assert.throws(() => parseServerName('[::1]:x', '-s'), usage(/"x" is not a port number/));
  });
});

describe('parsePort', () => {
  it('takes 1-65535 in decimal only', () => {
    assert.equal(parsePort('1', 'p'), 1);
    assert.equal(parsePort('08443', 'p'), 8443);
    for (const bad of ['', '-1', '1.5', '0x10', '123456', ' 80'])
      assert.throws(() => parsePort(bad, '--api-port'), usage(/^--api-port: /), bad);
  });
});

describe('formatAddress', () => {
  it('is the inverse of parseServerName', () => {
    for (const s of ['ep1:6603', '127.0.0.1:7001', '[::1]:7002']) assert.equal(formatAddress(parseServerName(s, '-s')), s);
  });
});
