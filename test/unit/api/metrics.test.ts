/**
 * `/metrics` (src/api/metrics.ts) on a bare fastify app: ekm's four families keep their names,
 * types and labels, the process and Node.js defaults are beside them, the output is valid
 * Prometheus text, and two servers in one process keep separate registries.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { Metrics } from '../../../src/api/metrics.js';
import { EkmError } from '../../../src/errors.js';
import { VERSION } from '../../../src/version.js';
import { type Exposition, parseExposition, samplesOf } from '../../support/prometheus.js';

const SIGN = { method: 'POST', route: '/api/v1/keys/:keyId/sign', operation: 'key.sign' };

/** A fastify app with the metrics hooks and route, one sign route that succeeds and one that aborts. */
async function appWithMetrics(): Promise<FastifyInstance> {
  const app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    const status = err instanceof EkmError ? err.httpStatus : 500;
    return reply.status(status).send({ error: { code: err instanceof EkmError ? err.code : 'EKM_INTERNAL' } });
  });
  new Metrics().register(app, async () => undefined);
  app.post('/api/v1/keys/:keyId/sign', async () => ({ signature: 'ok' }));
  app.post('/api/v1/keys/:keyId/decrypt', async () => {
    throw new EkmError('EKM_PROTOCOL_ABORTED', 'a helper refused');
  });
  await app.ready();
  return app;
}

async function scrape(app: FastifyInstance): Promise<{ contentType: string; exposition: Exposition }> {
  const r = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(r.statusCode, 200);
  return { contentType: String(r.headers['content-type']), exposition: parseExposition(r.body) };
}

const only = (exposition: Exposition, name: string, labels: Record<string, string>): number => {
  const found = samplesOf(exposition, name, labels);
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]!.value;
};

describe('/metrics', () => {
  let app: FastifyInstance;
  let exposition: Exposition;
  let contentType: string;

  before(async () => {
    app = await appWithMetrics();
    for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: `/api/v1/keys/${'a'.repeat(16)}/sign`, payload: {} });
    await app.inject({ method: 'POST', url: `/api/v1/keys/${'b'.repeat(16)}/decrypt`, payload: {} });
    await app.inject({ method: 'GET', url: '/no/such/route' });
    ({ contentType, exposition } = await scrape(app));
  });
  after(() => app.close());

  it('is Prometheus text 0.0.4', () => {
    assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });

  it('keeps ekm’s families with their names and types', () => {
    const types = Object.fromEntries(
      [...exposition.families].filter(([name]) => name.startsWith('ekm_')).map(([name, f]) => [name, f.type]),
    );
    assert.deepEqual(types, {
      ekm_build_info: 'gauge',
      ekm_http_requests_total: 'counter',
      ekm_http_request_duration_seconds: 'histogram',
      ekm_protocol_aborts_total: 'counter',
    });
  });

  it('ekm_build_info names the release', () => {
    assert.equal(only(exposition, 'ekm_build_info', { version: VERSION }), 1);
  });

  it('counts requests by method, route template, operation and status', () => {
    assert.equal(only(exposition, 'ekm_http_requests_total', { ...SIGN, status: '200' }), 3);
    assert.deepEqual(Object.keys(samplesOf(exposition, 'ekm_http_requests_total', SIGN)[0]!.labels).sort(), [
      'method',
      'operation',
      'route',
      'status',
    ]);
    assert.equal(
      only(exposition, 'ekm_http_requests_total', {
        method: 'POST',
        route: '/api/v1/keys/:keyId/decrypt',
        operation: 'key.decrypt',
        status: '502',
      }),
      1,
    );
    assert.equal(
      only(exposition, 'ekm_http_requests_total', { method: 'GET', route: 'unmatched', operation: 'unmatched', status: '404' }),
      1,
    );
    assert.ok(
      exposition.samples.every((s) => !s.labels.route?.includes('aaaa')),
      'labels come from route templates, not raw URLs',
    );
  });

  it('puts latencies into a histogram per method, route and operation', () => {
    const buckets = samplesOf(exposition, 'ekm_http_request_duration_seconds_bucket', SIGN);
    assert.deepEqual(
      buckets.map((b) => b.labels.le),
      ['0.001', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '+Inf'],
    );
    assert.ok(
      buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value),
      'buckets are cumulative',
    );
    assert.equal(only(exposition, 'ekm_http_request_duration_seconds_bucket', { ...SIGN, le: '+Inf' }), 3);
    assert.equal(only(exposition, 'ekm_http_request_duration_seconds_count', SIGN), 3);
    assert.ok(only(exposition, 'ekm_http_request_duration_seconds_sum', SIGN) > 0);
  });

  it('counts protocol aborts per operation', () => {
    assert.equal(only(exposition, 'ekm_protocol_aborts_total', { operation: 'key.decrypt' }), 1);
    assert.equal(samplesOf(exposition, 'ekm_protocol_aborts_total', { operation: 'key.sign' }).length, 0);
  });

  it('has the process and Node.js defaults operators expect', () => {
    const expected: Record<string, string> = {
      process_cpu_user_seconds_total: 'counter',
      process_cpu_system_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      process_open_fds: 'gauge',
      process_start_time_seconds: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
      nodejs_eventloop_lag_p99_seconds: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
      nodejs_heap_size_total_bytes: 'gauge',
      nodejs_active_handles_total: 'gauge',
      nodejs_version_info: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) assert.equal(exposition.families.get(name)?.type, type, name);
    // Left out on purpose: its GC observer slowed FROST signing (src/api/metrics.ts, PROCESS_COLLECTORS).
    assert.equal(exposition.families.has('nodejs_gc_duration_seconds'), false);
    assert.ok(only(exposition, 'process_resident_memory_bytes', {}) > 0);
  });

  it('a second server in the same process has a registry of its own', async () => {
    const other = await appWithMetrics();
    try {
      const { exposition: fresh } = await scrape(other);
      assert.equal(samplesOf(fresh, 'ekm_http_requests_total', SIGN).length, 0);
      assert.equal(fresh.families.get('nodejs_heap_size_used_bytes')?.type, 'gauge', 'the process defaults are on every server');
      assert.equal(only((await scrape(app)).exposition, 'ekm_http_requests_total', { ...SIGN, status: '200' }), 3);
    } finally {
      await other.close();
    }
  });

  it('the reader refuses what is not Prometheus text', () => {
    assert.throws(() => parseExposition('ekm_x 1\n'), /undeclared family/);
    assert.throws(() => parseExposition('# TYPE ekm_x counter\nekm_x{a="1" 1\n'), /not a Prometheus text line|bad labels/);
    assert.throws(() => parseExposition('# TYPE ekm_x counter\nekm_x one\n'), /bad value/);
  });
});
