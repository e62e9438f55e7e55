import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findOnPath } from '../../scripts/prerequisites.js';
import { kubeconfigPathFromTest } from '../helpers/kube.js';
import { processAlive } from '../helpers/process.js';

const demoScript = fileURLToPath(new URL('../../dist/scripts/demo.js', import.meta.url));
const buildScript = fileURLToPath(new URL('../../scripts/control-plane/build.sh', import.meta.url));

interface DemoRun {
  code: number | null;
  output: string;
}

function runDemo(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<DemoRun> {
  if (!existsSync(demoScript))
    throw new Error(`${demoScript} is missing: run npm run build first (npm test does)`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [demoScript], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      reject(new Error(`the demo did not finish within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('npm run demo', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pushgate-demo-test-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('deploys both environments, shows configured and pruned, rolls back with git revert, and leaves nothing running', async () => {
    const { code, output } = await runDemo(
      { ...process.env, PUSHGATE_DEMO_DIR: dir, PUSHGATE_DEMO_KUBECONFIG: kubeconfigPathFromTest() },
      110_000,
    );
    expect(code, output).toBe(0);
    expect(output).toMatch(/POST \/webhooks\/github {2}push env\/staging [0-9a-f]{7} .* -> 202/);
    expect(output).toMatch(/POST \/webhooks\/github {2}push env\/production [0-9a-f]{7} .* -> 202/);
    expect(output).toMatch(/created +ConfigMap +demo-staging-[0-9a-f]+\/web-config/);
    // pushgate diff, before the change's webhook: the ConfigMap's new line, the Service to prune.
    expect(output).toMatch(/# change v1 ConfigMap demo-staging-[0-9a-f]+\/web-config/);
    expect(output).toMatch(/^ +\+ +GREETING: Hello again from staging$/m);
    expect(output).toMatch(/# delete v1 Service demo-staging-[0-9a-f]+\/web/);
    expect(output).toMatch(
      /# staging at [0-9a-f]{40}: 0 to create, 1 to change, 0 to replace, 1 to prune, 1 object unchanged/,
    );
    expect(output).toMatch(/configured +ConfigMap +demo-staging-[0-9a-f]+\/web-config/);
    expect(output).toMatch(/pruned +Service +demo-staging-[0-9a-f]+\/web/);
    expect(output).toMatch(/Service +\(none\)/);
    expect(output).toMatch(/staging +env\/staging +applied [0-9a-f]{7} +last job succeeded/);
    expect(output).toContain('Demo finished');
    // pushgate stops by itself on SIGTERM, well within the demo's deadline (no SIGKILL needed).
    expect(output).not.toContain('WARNING');

    // pushgate (its port) and its embedded redis-server are gone.
    const port = Number(/port: (\d+)/.exec(readFileSync(join(dir, 'pushgate.yaml'), 'utf8'))?.[1]);
    expect(await portAccepts(port)).toBe(false);
    const pidFile = join(dir, 'run', '.pushgate', 'redis', 'redis-server.pid');
    if (existsSync(pidFile)) expect(processAlive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
    // Nor does the file that gave status and sync its address and password.
    expect(existsSync(join(dir, 'run', '.pushgate', 'redis', 'url'))).toBe(false);
  }, 120_000);

  it('names a missing prerequisite and how to install it, and exits 1', async () => {
    // A PATH with git but without redis-server.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(findOnPath('git')!, join(bin, 'git'));
    // An earlier run's log, which this run (pushgate never started) must not point at.
    mkdirSync(join(dir, 'demo'));
    writeFileSync(join(dir, 'demo', 'pushgate.log'), '');
    const { code, output } = await runDemo(
      {
        PATH: bin,
        HOME: dir,
        PUSHGATE_DEMO_DIR: join(dir, 'demo'),
        PUSHGATE_DEMO_KUBECONFIG: kubeconfigPathFromTest(),
      },
      30_000,
    );
    expect(code, output).toBe(1);
    expect(output).toMatch(/MISSING redis-server/);
    expect(output).toContain('apt-get install redis-server');
    expect(output).toContain('Demo failed: missing: redis-server');
    expect(output).not.toContain("pushgate's log");
  });

  it('says the control plane takes minutes to build only when it is not cached yet', async () => {
    // A cache of its own, and a go that reports 1.26 but builds nothing: both runs stop
    // (exit 1) right after the message, one at the build, the other at the fake etcd.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const fake = (file: string, script: string): void =>
      writeFileSync(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    fake(join(bin, 'go'), '[ "$1" = version ] && echo "go version go1.26.0 linux/amd64" && exit 0; exit 1');
    const { PUSHGATE_DEMO_KUBECONFIG: _kubeconfig, ...rest } = process.env;
    const env = {
      ...rest,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      PUSHGATE_CONTROL_PLANE_CACHE: join(dir, 'cache'),
      PUSHGATE_DEMO_DIR: join(dir, 'demo'),
    };
    const building = 'first run builds both from source with Go';

    const uncached = await runDemo(env, 60_000);
    expect(uncached.code, uncached.output).toBe(1);
    expect(uncached.output).toContain(building);

    const cacheDir = execFileSync('bash', [buildScript, '--print'], { env, encoding: 'utf8' }).trim();
    mkdirSync(cacheDir, { recursive: true });
    for (const binary of ['kube-apiserver', 'etcd']) fake(join(cacheDir, binary), 'exit 1');
    const cached = await runDemo(env, 60_000);
    expect(cached.code, cached.output).toBe(1);
    expect(cached.output).toContain('Starting the local control plane');
    expect(cached.output).toMatch(/ok +control plane +cached in /);
    expect(cached.output).not.toContain(building);
  });
});
