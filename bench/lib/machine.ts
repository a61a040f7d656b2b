/** A description of the machine a run was measured on, stored with every results file. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly totalMemoryBytes: number;
  readonly platform: string;
  readonly arch: string;
  readonly kernel: string;
  readonly node: string;
  readonly gitCommit: string | null;
  /** Uncommitted changes under src/ or bench/ when the run started. */
  readonly gitDirty: boolean | null;
}

export type LoadAverage = readonly [number, number, number];

export function loadAverage(): LoadAverage {
  const [a, b, c] = os.loadavg();
  return [round2(a!), round2(b!), round2(c!)];
}

export function describeMachine(root: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: os.platform(),
    arch: os.arch(),
    kernel: os.release(),
    node: process.version,
    gitCommit: git(root, ['rev-parse', 'HEAD'])?.trim() ?? null,
    gitDirty: ((s) => (s === undefined ? null : s.trim() !== ''))(git(root, ['status', '--porcelain', '--', 'src', 'bench'])),
  };
}

export function machineLine(m: MachineInfo): string {
  const gib = (m.totalMemoryBytes / 2 ** 30).toFixed(1);
  return `${m.cpuModel}, ${m.cores} cores, ${gib} GiB RAM, ${m.platform}/${m.arch} ${m.kernel}, Node ${m.node}`;
}

function git(root: string, args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
