/**
 * `/metrics` in the Prometheus text format (0.0.4), written here rather than with prom-client:
 * three families are a few dozen lines. Requests are counted per method, route, operation and
 * status; latencies go into a histogram per method, route and operation; protocol aborts (API
 * requests that failed with EKM_PROTOCOL_ABORTED) are counted per operation. Labels come from
 * route templates, never from raw URLs, so the series stay bounded however callers misbehave.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EkmError } from '../errors.js';
import { VERSION } from '../version.js';
import { operationOf } from './audit.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Hist {
  labels: string;
  counts: number[];
  sum: number;
  count: number;
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Record<string, string>): string =>
  Object.entries(l)
    .map(([k, v]) => `${k}="${esc(v)}"`)
    .join(',');

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Hist>();
  private readonly aborts = new Map<string, number>();
  private readonly started = new WeakMap<FastifyRequest, bigint>();

  observe(method: string, route: string, status: number, seconds: number, aborted: boolean): void {
    const operation = operationOf(method, route === 'unmatched' ? undefined : route);
    const base = { method, route, operation };
    const rk = labelText({ ...base, status: String(status) });
    this.requests.set(rk, (this.requests.get(rk) ?? 0) + 1);
    const hk = labelText(base);
    let h = this.latency.get(hk);
    if (!h) this.latency.set(hk, (h = { labels: hk, counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.counts[i]!++;
    });
    h.sum += seconds;
    h.count++;
    if (aborted) {
      const ak = labelText({ operation });
      this.aborts.set(ak, (this.aborts.get(ak) ?? 0) + 1);
    }
  }

  render(): string {
    const out: string[] = [];
    out.push('# HELP ekm_build_info The ekm release serving.', '# TYPE ekm_build_info gauge', `ekm_build_info{version="${esc(VERSION)}"} 1`);
    out.push('# HELP ekm_http_requests_total API requests answered, by route, operation and status.', '# TYPE ekm_http_requests_total counter');
    for (const [k, v] of this.requests) out.push(`ekm_http_requests_total{${k}} ${v}`);
    out.push('# HELP ekm_http_request_duration_seconds API request latency, by route and operation.', '# TYPE ekm_http_request_duration_seconds histogram');
    for (const h of this.latency.values()) {
      BUCKETS.forEach((b, i) => out.push(`ekm_http_request_duration_seconds_bucket{${h.labels},le="${b}"} ${h.counts[i]}`));
      out.push(`ekm_http_request_duration_seconds_bucket{${h.labels},le="+Inf"} ${h.count}`);
      out.push(`ekm_http_request_duration_seconds_sum{${h.labels}} ${h.sum}`);
      out.push(`ekm_http_request_duration_seconds_count{${h.labels}} ${h.count}`);
    }
    out.push('# HELP ekm_protocol_aborts_total API operations that failed because a threshold protocol aborted.', '# TYPE ekm_protocol_aborts_total counter');
    for (const [k, v] of this.aborts) out.push(`ekm_protocol_aborts_total{${k}} ${v}`);
    return `${out.join('\n')}\n`;
  }

  register(app: FastifyInstance): void {
    const aborted = new WeakSet<FastifyRequest>();
    app.addHook('onRequest', async (req) => {
      this.started.set(req, process.hrtime.bigint());
    });
    app.addHook('onError', async (req, _reply, err) => {
      if (err instanceof EkmError && err.code === 'EKM_PROTOCOL_ABORTED') aborted.add(req);
    });
    app.addHook('onResponse', async (req, reply) => {
      const t0 = this.started.get(req);
      const seconds = t0 === undefined ? 0 : Number(process.hrtime.bigint() - t0) / 1e9;
      this.observe(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, seconds, aborted.has(req));
    });
    app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(this.render()));
  }
}
