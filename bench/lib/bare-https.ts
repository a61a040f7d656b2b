/**
 * Measures the platform's floor for an HTTPS request between two processes on this machine (see
 * bare-https-server.ts): back to back, and with the client idle between requests for as long as
 * a protocol run keeps it waiting, since a process that sleeps takes time to wake up.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Http1Connection } from './http1-client.js';

export async function bareHttpsLatencies(opts: { root: string; keyPath: string; certPem: string; certPath: string; idleMs: number; count: number }): Promise<number[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(opts.root, 'bench/lib/bare-https-server.ts'), opts.keyPath, opts.certPath], {
    cwd: opts.root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', (code) => reject(new Error(`the bare HTTPS server exited (${code})`)));
    });
    // The same lean client as the measured requests (http1-client.ts).
    const conn = await Http1Connection.open('127.0.0.1', port, opts.certPem);
    const body = { plaintext: Buffer.alloc(1024, 7).toString('base64') };
    try {
      for (let i = 0; i < 20; i++) await conn.request('POST', '/echo', {}, body);
      const out: number[] = [];
      for (let i = 0; i < opts.count; i++) {
        if (opts.idleMs > 0) await new Promise((r) => setTimeout(r, opts.idleMs));
        const s = performance.now();
        const r = await conn.request('POST', '/echo', {}, body);
        out.push(performance.now() - s);
        if (r.status !== 200) throw new Error(`bare HTTPS server: HTTP ${r.status}`);
        JSON.parse(r.body.toString('utf8'));
      }
      return out;
    } finally {
      conn.close();
    }
  } finally {
    child.kill();
  }
}
