/**
 * The platform's floor for one HTTPS request (benchmark rest): a fastify server with one route
 * that answers a small JSON body, in a process of its own like the EP, with the EP's certificate.
 * Prints its port on stdout, then serves until killed.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const [keyPath, certPath] = process.argv.slice(2) as [string, string];
const app = Fastify({ https: { key: readFileSync(keyPath), cert: readFileSync(certPath) }, logger: false });
app.post('/echo', async () => ({ keyId: '0123456789abcdef', ciphertext: 'x'.repeat(1400) }));
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${(app.server.address() as { port: number }).port}\n`);
