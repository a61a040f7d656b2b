/**
 * `/metrics` in the Prometheus text format (0.0.4), through prom-client on a registry of ekm's own
 * per server (never prom-client's global one, so two servers in one process, as in tests, do not
 * share request series).
 *
 * ekm's families, whose names, types, labels and meaning operators' dashboards depend on:
 * - `ekm_build_info{version}` (gauge, always 1): the release serving;
 * - `ekm_http_requests_total{method,route,operation,status}` (counter): API requests answered;
 * - `ekm_http_request_duration_seconds{method,route,operation}` (histogram): API request latency;
 * - `ekm_protocol_aborts_total{operation}` (counter): API requests that failed with EKM_PROTOCOL_ABORTED.
 * Labels come from route templates, never from raw URLs, so the series stay bounded however callers
 * misbehave. Beside them, prom-client's default metrics but GC durations (see PROCESS_COLLECTORS):
 * process CPU, memory and file descriptors, event-loop lag, heap sizes and active handles.
 */
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { EkmError } from '../errors.js';
import { VERSION } from '../version.js';
import { operationOf } from './audit.js';

/** Latency buckets in seconds, 1 ms to 30 s. */
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const ROUTE_LABELS = ['method', 'route', 'operation'] as const;

/**
 * prom-client's default process and Node.js collectors, from its own list (so one it adds, or leaves
 * out on this Node.js, follows), all but its GC histogram: that one observes every garbage
 * collection of the main thread through a PerformanceObserver, and with it the EP's FROST and BIP340
 * signing (verified in JavaScript, so collected often) was 20-35 % slower
 * (bench/comparisons/2026-12-08-service-reshaping). Heap sizes per space stay, and show the
 * collector's work between scrapes.
 */
const PROCESS_COLLECTORS = collectDefaultMetrics.metricsList.filter((name) => name !== 'gc');
type Collector = (registry: Registry, config: { eventLoopMonitoringPrecision: number }) => void;

/**
 * The process and Node.js metrics, collected once per process: they describe the process, not a
 * server, and the event-loop monitor prom-client enables is never stopped, so one per fastify app
 * would pile up in tests that build many apps.
 */
let processMetrics: Registry | undefined;
function processRegistry(): Registry {
  if (!processMetrics) {
    const registry = new Registry();
    const require = createRequire(import.meta.url);
    for (const name of PROCESS_COLLECTORS) {
      (require(`prom-client/lib/metrics/${name}`) as Collector)(registry, { eventLoopMonitoringPrecision: 10 });
    }
    processMetrics = registry;
  }
  return processMetrics;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'ekm_http_requests_total',
    help: 'API requests answered, by route, operation and status.',
    labelNames: [...ROUTE_LABELS, 'status'],
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'ekm_http_request_duration_seconds',
    help: 'API request latency, by route and operation.',
    labelNames: ROUTE_LABELS,
    buckets: BUCKETS,
    registers: [this.registry],
  });
  private readonly aborts = new Counter({
    name: 'ekm_protocol_aborts_total',
    help: 'API operations that failed because a threshold protocol aborted.',
    labelNames: ['operation'],
    registers: [this.registry],
  });
  private readonly started = new WeakMap<FastifyRequest, bigint>();

  constructor() {
    new Gauge({ name: 'ekm_build_info', help: 'The ekm release serving.', labelNames: ['version'], registers: [this.registry] }).set(
      { version: VERSION },
      1,
    );
    const shared = processRegistry();
    for (const { name } of shared.getMetricsAsArray()) this.registry.registerMetric(shared.getSingleMetric(name)!);
  }

  observe(method: string, route: string, status: number, seconds: number, aborted: boolean): void {
    const operation = operationOf(method, route === 'unmatched' ? undefined : route);
    const labels = { method, route, operation };
    this.requests.inc({ ...labels, status: String(status) });
    this.latency.observe(labels, seconds);
    if (aborted) this.aborts.inc({ operation });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Counts every request of `app` and serves `/metrics` to callers `mayRead` lets through. */
  register(app: FastifyInstance, mayRead: (req: FastifyRequest) => Promise<unknown>): void {
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
    const preValidation = async (req: FastifyRequest): Promise<void> => {
      await mayRead(req);
    };
    app.get('/metrics', { preValidation }, async (_req, reply) => reply.type(this.registry.contentType).send(await this.render()));
  }
}
