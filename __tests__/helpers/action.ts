// Runs the bundled action as GitHub's runner does: `node dist/index.js` with INPUT_* variables (the
// defaults of action.yml filled in, as the runner fills them), GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
// files, and reads back the outputs and the summary.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..', '..');

export interface ActionRun {
  code: number;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
}

/** The values GitHub substitutes for the `${{ ... }}` defaults in action.yml. */
export interface ActionContext {
  token?: string;
  repositoryOwner?: string;
}

async function actionDefaults(context: ActionContext): Promise<Record<string, string>> {
  const spec = parseYaml(await readFile(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const defaults: Record<string, string> = {};
  for (const [name, input] of Object.entries(spec.inputs)) {
    defaults[name] = String(input.default ?? '')
      .replace('${{ github.token }}', context.token ?? '')
      .replace('${{ github.repository_owner }}', context.repositoryOwner ?? 'Test-Owner');
  }
  return defaults;
}

/** Parses GITHUB_OUTPUT's `name<<delimiter` blocks (what @actions/core writes). */
function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i] ?? '');
    if (!m) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i] ?? '');
    outputs[m[1]!] = value.join('\n');
  }
  return outputs;
}

export async function runAction(
  inputs: Record<string, string>,
  options: {
    env?: Record<string, string>;
    context?: ActionContext;
    timeoutMs?: number;
    /** Sees the child process (to kill it mid-run). */
    onSpawn?: (child: ChildProcess) => void;
    /** RUNNER_TEMP, kept after the run (files the action leaves for later steps); default a removed temp folder. */
    runnerTemp?: string;
    /**
     * Start the action as the leader of a process group of its own, so whatever it starts can be found by
     * its group id after it is gone (signals still go to the action's process only, as the runner sends them).
     */
    processGroup?: boolean;
  } = {},
): Promise<ActionRun> {
  const dir = await mkdtemp(join(tmpdir(), 'action-run-'));
  try {
    const outputFile = join(dir, 'output');
    const summaryFile = join(dir, 'summary');
    await writeFile(outputFile, '');
    await writeFile(summaryFile, '');
    const all = { ...(await actionDefaults(options.context ?? {})), ...inputs };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      GITHUB_OUTPUT: outputFile,
      GITHUB_STEP_SUMMARY: summaryFile,
      RUNNER_TEMP: options.runnerTemp ?? dir,
      ...options.env,
    };
    for (const [name, value] of Object.entries(all)) env[`INPUT_${name.toUpperCase()}`] = value;
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'index.js')], {
      env,
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.processGroup === true,
    });
    options.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
    clearTimeout(timer);
    return {
      code,
      stdout,
      stderr,
      outputs: parseOutputs(await readFile(outputFile, 'utf8')),
      summary: await readFile(summaryFile, 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The `::error::` lines of a run (what core.setFailed printed). */
export function errorLines(run: ActionRun): string[] {
  return run.stdout.split('\n').filter((l) => l.startsWith('::error::'));
}
