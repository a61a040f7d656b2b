// Started by bin/_launch.sh as `node _launch.mjs <who> <entry> [args...]`: refuses a Node.js older
// than package.json's "engines" with the same one-line message as bin/_require_node.sh, then runs
// the entry point in this same process. Checking here rather than with `node -p` in the shell
// saves a second Node.js start (about 0.15 s) on every ekm and ucl command.
// Plain JavaScript that old Node.js versions still parse, so that they reach the message.
import { pathToFileURL } from 'node:url';

const [who, entry] = process.argv.splice(2, 2);
const version = process.versions.node;
const [major, minor] = version.split('.').map(Number);
if (!(major > 20 || (major === 20 && minor >= 19))) {
  process.stderr.write(`${who}: Node.js >= 20.19 is required, found ${version} at ${process.execPath}: install Node.js 20.19 or newer\n`);
  process.exit(1);
}
// The entry sees the argv it would have seen when run directly: [node, entry, args...].
process.argv[1] = entry;
await import(pathToFileURL(entry).href);
