/**
 * The attackers of the login-flood suite, in a process of their own (so that their load does not
 * slow the measuring client's event loop, only the machine): `node --import tsx
 * bench/lib/login-flooder.ts <port> <clients>` starts `clients` loops, each from its own loopback
 * address (127.0.0.2, …), each sending the token grant an unknown user and a wrong password as
 * soon as the last answer came. It prints `ready` once all are connected, and on SIGTERM the
 * answers by HTTP status as one line of JSON, then exits.
 */
import https from 'node:https';

const [port, clients] = process.argv.slice(2).map(Number) as [number, number];
const answers: Record<string, number> = {};
let stop = false;
const count = (status: string): void => {
  answers[status] = (answers[status] ?? 0) + 1;
};

function once(agent: https.Agent, i: number): Promise<void> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ username: `guess${i}@root`, password: `Wrong-pass-${i}` });
    const req = https.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/api/v1/token', agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } },
      (res) => {
        res.resume();
        res.on('end', () => {
          count(String(res.statusCode));
          resolve();
        });
      },
    );
    req.on('error', () => {
      count('error');
      resolve();
    });
    req.end(body);
  });
}

async function attacker(n: number): Promise<void> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.0.${n + 2}`, rejectUnauthorized: false });
  for (let i = 0; !stop; i++) await once(agent, i);
  agent.destroy();
}

const running = Array.from({ length: clients }, (_, n) => attacker(n));
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  stop = true;
  void Promise.all(running).then(() => {
    process.stdout.write(`${JSON.stringify(answers)}\n`);
    process.exit(0);
  });
});
