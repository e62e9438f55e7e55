/**
 * `npm run demo`: the whole pushgate flow on this machine, with real parts only.
 *
 *   local control plane (scripts/cluster.sh) -> demo environment repository (git, file://)
 *   -> `pushgate start` (embedded redis-server) -> signed GitHub push webhook -> job followed
 *   to its end -> the cluster's objects; then a change (configured + pruned) and a
 *   `git revert` (the rollback).
 *
 * Environment:
 *   PUSHGATE_DEMO_DIR         where the demo keeps its files (default .pushgate/demo)
 *   PUSHGATE_DEMO_KUBECONFIG  use this cluster instead of starting the local control plane
 *                             (the tests pass theirs); namespaces then get a random suffix
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { cachedControlPlane, checkPrerequisites } from './prerequisites.js';
import { findFreePort as freePort } from '../src/lib/free-port.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist', 'src', 'cli.js');
const clusterScript = join(root, 'scripts', 'cluster.sh');
const buildScript = join(root, 'scripts', 'control-plane', 'build.sh');

const demoDir = resolve(process.env.PUSHGATE_DEMO_DIR ?? join(root, '.pushgate', 'demo'));
const externalKubeconfig = process.env.PUSHGATE_DEMO_KUBECONFIG;
const paths = {
  cluster: join(demoDir, 'cluster'),
  bare: join(demoDir, 'env-config.git'),
  work: join(demoDir, 'env-config'),
  run: join(demoDir, 'run'),
  config: join(demoDir, 'pushgate.yaml'),
  log: join(demoDir, 'pushgate.log'),
};

const REPO_NAME = 'demo/env-config';
const JOB_DEADLINE_MS = 180_000;
// Longer than the worker's own shutdown deadline (60 s): a deploy in flight may finish first.
const STOP_DEADLINE_MS = 75_000;
const GIT_IDENTITY = [
  '-c',
  'user.name=pushgate demo',
  '-c',
  'user.email=demo@pushgate.invalid',
  '-c',
  'commit.gpgsign=false',
];

// ---- output ---------------------------------------------------------------------------

const started = Date.now();
const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const step = (title: string): void => say(`\n==> ${title}`);
const info = (text: string): void => say(`    ${text}`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
const short = (sha: string | null | undefined): string => (sha ?? '').slice(0, 7);

class DemoFailure extends Error {}

// ---- cleanup: runs once, in reverse order, on success, failure and signals -------------

const cleanups: { label: string; run: () => Promise<void> }[] = [];
let cleaning: Promise<void> | undefined;
const cleanupWarnings: string[] = [];

function onCleanup(label: string, run: () => Promise<void>): void {
  cleanups.push({ label, run });
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (cleanups.length > 0) step('Cleaning up');
    for (const { label, run } of cleanups.reverse()) {
      try {
        await run();
        info(`${label}: done`);
      } catch (error) {
        cleanupWarnings.push(`${label}: ${(error as Error).message}`);
        info(`WARNING ${label}: ${(error as Error).message}`);
      }
    }
  })();
  return cleaning;
}

/** Set on SIGINT/SIGTERM: the flow stops at its next wait, quietly, while cleanup runs. */
const interruption = new AbortController();

function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interruption.signal.aborted) {
        say('second signal: exiting without finishing the cleanup');
        process.exit(130);
      }
      interruption.abort();
      say(`\n${signal}: stopping the demo (a second ${signal} exits at once)`);
      void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}

// ---- small helpers ---------------------------------------------------------------------

function git(cwd: string, ...args: string[]): string {
  try {
    return execFileSync('git', [...GIT_IDENTITY, ...args], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new DemoFailure(`git ${args.join(' ')} failed: ${stderr.trim() || (error as Error).message}`);
  }
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (interruption.signal.aborted) throw new DemoFailure('interrupted');
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new DemoFailure(`timed out after ${seconds(timeoutMs)} waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

function logTail(lines = 15): string {
  try {
    return readFileSync(paths.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- 1. prerequisites ------------------------------------------------------------------

function checkTools(): void {
  step('Checking prerequisites');
  const results = checkPrerequisites({ controlPlane: externalKubeconfig === undefined, buildScript });
  for (const result of results)
    info(`${result.ok ? 'ok     ' : 'MISSING'} ${result.name.padEnd(14)} ${result.detail}`);
  const missing = results.filter((r) => !r.ok);
  if (!existsSync(cli))
    missing.push({ name: 'build', ok: false, detail: '', hint: 'run npm run build (npm run demo does it)' });
  if (missing.length === 0) return;
  for (const m of missing) info(`-> ${m.name}: ${m.hint}`);
  throw new DemoFailure(`missing: ${missing.map((m) => m.name).join(', ')}`);
}

// ---- 2. the cluster --------------------------------------------------------------------

function runClusterScript(command: 'up' | 'down', showProgress: boolean): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('bash', [clusterScript, command], {
      cwd: root,
      env: {
        ...process.env,
        PUSHGATE_CLUSTER_DIR: paths.cluster,
        // If the demo dies without cleaning up, the cluster stops by itself.
        PUSHGATE_CLUSTER_OWNER_PID: command === 'up' ? String(process.pid) : '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (showProgress) for (const line of chunk.split('\n')) if (line.trim() !== '') info(`| ${line}`);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolveRun(stdout.trim().split('\n').at(-1)?.trim() ?? '');
      else
        reject(
          new DemoFailure(
            `scripts/cluster.sh ${command} failed (exit ${code}):\n${stderr.trim().split('\n').slice(-10).join('\n')}`,
          ),
        );
    });
  });
}

async function startCluster(): Promise<string> {
  if (externalKubeconfig) {
    step('Using the cluster of PUSHGATE_DEMO_KUBECONFIG');
    info(externalKubeconfig);
    return externalKubeconfig;
  }
  step('Starting the local control plane (etcd + kube-apiserver, no kubelet)');
  if (cachedControlPlane(buildScript) === undefined) {
    info(
      'Not built yet: this first run builds both from source with Go, about 4-15 minutes on two cores; later runs take seconds.',
    );
  }
  // A previous demo that was killed may have left it running.
  await runClusterScript('down', false).catch(() => undefined);
  onCleanup('stopping the control plane', async () => void (await runClusterScript('down', false)));
  const t0 = Date.now();
  const kubeconfig = await runClusterScript('up', true);
  if (!kubeconfig || !existsSync(kubeconfig))
    throw new DemoFailure('scripts/cluster.sh up printed no kubeconfig path');
  info(`ready in ${seconds(Date.now() - t0)}; kubeconfig: ${kubeconfig}`);
  return kubeconfig;
}

// ---- 3. the environment repository -----------------------------------------------------

interface DemoEnvironment {
  name: 'staging' | 'production';
  branch: string;
  namespace: string;
  replicas: number;
  greeting: string;
}

function manifests(env: DemoEnvironment): Record<string, string> {
  return {
    'manifests/configmap.yaml': `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  GREETING: ${JSON.stringify(env.greeting)}
`,
    'manifests/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: ${env.replicas}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginxinc/nginx-unprivileged:1.27
          ports: [{containerPort: 8080}]
          envFrom: [{configMapRef: {name: web-config}}]
`,
    'manifests/service.yaml': `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`,
  };
}

function writeFiles(files: Record<string, string>): void {
  for (const [file, content] of Object.entries(files)) {
    const path = join(paths.work, file);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
  }
}

function createRepository(environments: DemoEnvironment[]): void {
  step('Creating the demo environment repository');
  git(demoDir, 'init', '--quiet', '--bare', paths.bare);
  git(demoDir, 'clone', '--quiet', paths.bare, paths.work);
  for (const env of environments) {
    git(paths.work, 'checkout', '--quiet', '--orphan', env.branch);
    git(paths.work, 'rm', '-r', '--quiet', '--force', '--ignore-unmatch', '.');
    writeFiles(manifests(env));
    git(paths.work, 'add', '.');
    git(paths.work, 'commit', '--quiet', '-m', `${env.name}: web (ConfigMap, Deployment, Service)`);
    git(paths.work, 'push', '--quiet', 'origin', env.branch);
    info(
      `${env.branch.padEnd(16)} ${short(git(paths.work, 'rev-parse', 'HEAD'))}  manifests/{configmap,deployment,service}.yaml`,
    );
  }
  info(`bare repository: ${paths.bare}`);
}

// ---- 4. pushgate -----------------------------------------------------------------------

function writeConfig(port: number, kubeconfig: string, environments: DemoEnvironment[]): void {
  const lines = [
    '# Written by npm run demo.',
    'server:',
    `  port: ${port}`,
    '  host: 127.0.0.1',
    `  publicUrl: http://127.0.0.1:${port}`,
    'redis:',
    '  # no url: pushgate start runs its own redis-server',
    '  prefix: pushgate-demo',
    'clusters:',
    '  - name: demo',
    `    kubeconfig: ${JSON.stringify(kubeconfig)}`,
    'environments:',
  ];
  for (const env of environments) {
    lines.push(
      `  - name: ${env.name}`,
      '    repo:',
      '      provider: github',
      `      name: ${REPO_NAME}`,
      `      url: ${JSON.stringify(`file://${paths.bare}`)}`,
      `    branch: ${env.branch}`,
      '    path: manifests',
      '    cluster: demo',
      `    namespace: ${env.namespace}`,
      '    prune: true',
      '    allow:',
      `      namespaces: [${env.namespace}]`,
      '    # No kubelet here: the demo itself marks Deployments as rolled out (see the output).',
      '    healthTimeout: 60s',
      '    reconcileInterval: 0',
    );
  }
  writeFileSync(paths.config, `${lines.join('\n')}\n`);
}

interface Pushgate {
  url: string;
  secret: string;
}

async function startPushgate(kubeconfig: string, environments: DemoEnvironment[]): Promise<Pushgate> {
  step('Starting pushgate (receiver + worker + embedded redis-server)');
  const port = await freePort();
  writeConfig(port, kubeconfig, environments);
  const secret = randomBytes(24).toString('hex');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, GITHUB_WEBHOOK_SECRET: secret, LOG_LEVEL: 'info' };
  // The demo's pushgate must use its own embedded Redis, port and config, whatever the shell has.
  for (const name of [
    'REDIS_URL',
    'PORT',
    'PUSHGATE_CONFIG',
    'PUSHGATE_API_TOKEN',
    'GITHUB_TOKEN',
    'GITLAB_TOKEN',
  ]) {
    delete childEnv[name];
  }
  mkdirSync(paths.run, { recursive: true });
  const log = openSync(paths.log, 'a');
  // cwd is the demo's run folder, so its .pushgate/ (Redis data, git cache) never mixes with
  // that of an `npm start` in the project.
  const child = spawn(process.execPath, [cli, 'start', '--config', paths.config], {
    cwd: paths.run,
    env: childEnv,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  onCleanup('stopping pushgate (SIGTERM)', async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, STOP_DEADLINE_MS);
    await exited(child);
    clearTimeout(timer);
    // A graceful stop takes well under a second once the jobs have ended.
    if (killed)
      throw new DemoFailure(
        `did not exit within ${seconds(STOP_DEADLINE_MS)} of SIGTERM; killed with SIGKILL`,
      );
  });
  info(`node dist/src/cli.js start --config ${paths.config}`);
  info(`its JSON logs: ${paths.log}`);

  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  await until('pushgate to answer GET /readyz', 60_000, async () => {
    if (child.exitCode !== null) {
      throw new DemoFailure(
        `pushgate start exited with code ${child.exitCode}; its log ends with:\n${logTail()}`,
      );
    }
    const response = await fetch(`${url}/readyz`).catch(() => undefined);
    return response?.ok ? true : undefined;
  });
  info(`ready at ${url} in ${seconds(Date.now() - t0)} (GET /readyz -> 200)`);
  return { url, secret };
}

// ---- 5. the kubelet stand-in -----------------------------------------------------------

/**
 * There is no kubelet or controller-manager in the local control plane, so no Deployment ever
 * becomes ready by itself. Like the tests, the demo writes the status a rolled-out Deployment
 * would have, through the API, so pushgate's health wait has something real to observe.
 */
function startRolloutStandIn(kc: KubeConfig, namespaces: string[]): () => Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  let running = true;
  const markRolledOut = async (deployment: V1Deployment): Promise<void> => {
    const generation = deployment.metadata?.generation ?? 0;
    if ((deployment.status?.observedGeneration ?? -1) >= generation) return;
    const replicas = deployment.spec?.replicas ?? 1;
    const now = new Date();
    deployment.status = {
      observedGeneration: generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [
        {
          type: 'Available',
          status: 'True',
          reason: 'MinimumReplicasAvailable',
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
        {
          type: 'Progressing',
          status: 'True',
          reason: 'NewReplicaSetAvailable',
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
      ],
    };
    await apps.replaceNamespacedDeploymentStatus({
      name: deployment.metadata!.name!,
      namespace: deployment.metadata!.namespace!,
      body: deployment,
    });
  };
  const loop = (async () => {
    while (running) {
      for (const namespace of namespaces) {
        try {
          const list = await apps.listNamespacedDeployment({ namespace });
          for (const deployment of list.items) await markRolledOut(deployment);
        } catch {
          // A conflict with pushgate's own write, or the namespace not there yet: next round.
        }
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

// ---- 6. webhooks and jobs --------------------------------------------------------------

interface JobView {
  id: string;
  environment: string;
  state: string;
  sha: string | null;
  attempts: number;
  resources: {
    apiVersion: string;
    kind: string;
    namespace?: string;
    name: string;
    action: string;
    message?: string;
  }[];
  error: string | null;
  message?: string | null;
}

/** Signs and sends the push webhook GitHub would send, with the real algorithm. */
async function sendPush(
  pushgate: Pushgate,
  branch: string,
  before: string,
  after: string,
  message: string,
): Promise<string> {
  const body = JSON.stringify({
    ref: `refs/heads/${branch}`,
    before,
    after,
    created: /^0+$/.test(before),
    deleted: false,
    forced: false,
    compare: `https://github.com/${REPO_NAME}/compare/${short(before)}...${short(after)}`,
    repository: {
      id: 1,
      name: 'env-config',
      full_name: REPO_NAME,
      private: true,
      owner: { login: 'demo', name: 'demo' },
      html_url: `https://github.com/${REPO_NAME}`,
      clone_url: `https://github.com/${REPO_NAME}.git`,
      default_branch: 'main',
    },
    pusher: { name: 'demo', email: 'demo@pushgate.invalid' },
    sender: { login: 'demo', id: 1, type: 'User' },
    head_commit: {
      id: after,
      message,
      timestamp: new Date().toISOString(),
      author: { name: 'pushgate demo' },
    },
    commits: [{ id: after, message, timestamp: new Date().toISOString(), author: { name: 'pushgate demo' } }],
  });
  const signature = `sha256=${createHmac('sha256', pushgate.secret).update(body).digest('hex')}`;
  const deliveryId = randomUUID();
  const response = await fetch(`${pushgate.url}/webhooks/github`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/pushgate-demo',
      'x-github-event': 'push',
      'x-github-delivery': deliveryId,
      'x-hub-signature-256': signature,
    },
    body,
  });
  const text = await response.text();
  info(
    `POST /webhooks/github  push ${branch} ${short(after)}  (delivery ${deliveryId.slice(0, 8)}, signed)  -> ${response.status}`,
  );
  if (response.status !== 202) throw new DemoFailure(`the webhook was answered ${response.status}: ${text}`);
  const answer = JSON.parse(text) as { jobs?: { id: string; environment: string; statusUrl: string }[] };
  const job = answer.jobs?.[0];
  if (!job) throw new DemoFailure(`the webhook answer names no job: ${text}`);
  info(`job ${job.id} queued for ${job.environment}: ${job.statusUrl}`);
  return job.id;
}

/**
 * `pushgate diff`: what the pushed commit will change, before its webhook is sent. Read from
 * the cluster and the repository; it writes nothing.
 */
async function previewDiff(env: DemoEnvironment): Promise<void> {
  info(
    `node dist/src/cli.js diff ${env.name} --config ${paths.config}   (before the webhook: what it will change)`,
  );
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((done, fail) => {
    execFile(
      process.execPath,
      [cli, 'diff', env.name, '--config', paths.config],
      // From the run folder: the git cache of the running pushgate.
      { cwd: paths.run, env: { ...process.env, LOG_LEVEL: 'silent' }, maxBuffer: 16 * 1024 * 1024 },
      (error, out, err) =>
        error
          ? fail(new DemoFailure(`pushgate diff failed: ${err.trim() || error.message}`))
          : done({ stdout: out, stderr: err }),
    );
  });
  for (const line of `${stdout}${stderr}`.trimEnd().split('\n')) info(`  ${line}`);
}

async function followJob(pushgate: Pushgate, id: string): Promise<JobView> {
  const t0 = Date.now();
  let lastState = '';
  const job = await until(`job ${id} to finish`, JOB_DEADLINE_MS, async () => {
    const response = await fetch(`${pushgate.url}/jobs/${encodeURIComponent(id)}`);
    if (!response.ok)
      throw new DemoFailure(`GET /jobs/${id} answered ${response.status}: ${await response.text()}`);
    const current = (await response.json()) as JobView;
    if (current.state !== lastState) {
      lastState = current.state;
      info(`GET /jobs/${id}  ${seconds(Date.now() - t0).padStart(6)}  ${current.state}`);
    }
    return ['succeeded', 'failed', 'superseded'].includes(current.state) ? current : undefined;
  });
  for (const r of job.resources) {
    const where = r.namespace ? `${r.namespace}/${r.name}` : r.name;
    info(`  ${r.action.padEnd(10)} ${r.kind.padEnd(11)} ${where}${r.message ? `  (${r.message})` : ''}`);
  }
  if (job.state !== 'succeeded') {
    throw new DemoFailure(`job ${id} ended ${job.state}: ${job.error ?? job.message ?? 'no reason given'}`);
  }
  info(`deployed ${short(job.sha)} in ${seconds(Date.now() - t0)} (attempts: ${job.attempts})`);
  return job;
}

function expectActions(job: JobView, expected: Record<string, string>): void {
  for (const [name, action] of Object.entries(expected)) {
    const [kind, objectName] = name.split('/');
    const found = job.resources.find((r) => r.kind === kind && r.name === objectName);
    if (found?.action !== action) {
      throw new DemoFailure(
        `expected ${name} to be ${action}, but the job says ${found?.action ?? 'nothing about it'}`,
      );
    }
  }
}

async function showCluster(kc: KubeConfig, namespace: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  info(`in the cluster, namespace ${namespace}:`);
  const owner = (labels: Record<string, string> | undefined): string => {
    const environment = labels?.['pushgate.dev/environment'];
    return environment ? `  [pushgate.dev/environment=${environment}]` : '';
  };
  const configMaps = await core.listNamespacedConfigMap({ namespace });
  for (const cm of configMaps.items) {
    const name = cm.metadata?.name ?? '';
    if (name === 'kube-root-ca.crt') continue;
    if (cm.metadata?.labels?.['pushgate.dev/inventory'] === 'true') {
      // What prune works from: the objects the last deploy applied, recorded in the cluster.
      const objects = (cm.data?.['objects.json'] ?? '')
        .split('\n')
        .filter((line) => line.trim() !== '').length;
      info(`  ConfigMap   ${name}  inventory: ${objects} objects at ${short(cm.data?.revision)}`);
      continue;
    }
    info(`  ConfigMap   ${name}  GREETING=${JSON.stringify(cm.data?.GREETING)}${owner(cm.metadata?.labels)}`);
  }
  const deployments = await apps.listNamespacedDeployment({ namespace });
  for (const d of deployments.items) {
    const ready = `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 1} ready`;
    info(`  Deployment  ${d.metadata?.name}  ${ready}${owner(d.metadata?.labels)}`);
  }
  const services = await core.listNamespacedService({ namespace });
  for (const s of services.items) {
    info(
      `  Service     ${s.metadata?.name}  ${s.spec?.clusterIP ?? ''}:${s.spec?.ports?.[0]?.port ?? ''}${owner(s.metadata?.labels)}`,
    );
  }
  if (services.items.length === 0) info('  Service     (none)');
}

// ---- the flow --------------------------------------------------------------------------

async function runDemo(): Promise<void> {
  say('pushgate demo: a git push to an environment branch becomes a deploy');
  mkdirSync(demoDir, { recursive: true });
  // Only the demo's own files: PUSHGATE_DEMO_DIR may point anywhere. Removed first, so a run
  // that fails early never points at an earlier run's log.
  for (const path of [paths.bare, paths.work, paths.run, paths.config, paths.log])
    rmSync(path, { recursive: true, force: true });
  checkTools();

  const kubeconfig = await startCluster();
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);

  // A shared cluster (the tests') keeps Terminating namespaces forever: never reuse names there.
  const suffix = externalKubeconfig ? `-${randomBytes(3).toString('hex')}` : '';
  const environments: DemoEnvironment[] = [
    {
      name: 'staging',
      branch: 'env/staging',
      namespace: `demo-staging${suffix}`,
      replicas: 1,
      greeting: 'Hello from staging',
    },
    {
      name: 'production',
      branch: 'env/production',
      namespace: `demo-production${suffix}`,
      replicas: 2,
      greeting: 'Hello from production',
    },
  ];
  step('Creating the namespaces the environments deploy to');
  const core = kc.makeApiClient(CoreV1Api);
  for (const env of environments) {
    await core.createNamespace({
      body: { metadata: { name: env.namespace, labels: { 'pushgate.dev/demo': 'true' } } },
    });
    info(`namespace/${env.namespace}`);
  }

  createRepository(environments);
  // Started before pushgate so that it is stopped after it: a deploy still waiting for health
  // when the demo is interrupted then completes, and pushgate stops promptly.
  const stopStandIn = startRolloutStandIn(
    kc,
    environments.map((e) => e.namespace),
  );
  onCleanup('stopping the rollout stand-in', stopStandIn);
  const pushgate = await startPushgate(kubeconfig, environments);
  info(
    'no kubelet here: the demo marks Deployments rolled out through the API, so the health wait completes',
  );

  const zero = '0'.repeat(40);
  const staging = environments[0]!;
  for (const env of environments) {
    step(`Deploying ${env.name}: push webhook for ${env.branch}`);
    const sha = git(paths.work, 'rev-parse', env.branch);
    const job = await followJob(
      pushgate,
      await sendPush(pushgate, env.branch, zero, sha, `${env.name}: web`),
    );
    expectActions(job, {
      'ConfigMap/web-config': 'created',
      'Deployment/web': 'created',
      'Service/web': 'created',
    });
    await showCluster(kc, env.namespace);
  }

  step('Changing staging: edit the ConfigMap, delete service.yaml, push');
  git(paths.work, 'checkout', '--quiet', staging.branch);
  const before = git(paths.work, 'rev-parse', 'HEAD');
  writeFiles({
    'manifests/configmap.yaml': manifests({ ...staging, greeting: 'Hello again from staging' })[
      'manifests/configmap.yaml'
    ]!,
  });
  git(paths.work, 'rm', '--quiet', 'manifests/service.yaml');
  git(paths.work, 'commit', '--quiet', '-am', 'staging: new greeting, no Service');
  git(paths.work, 'push', '--quiet', 'origin', staging.branch);
  const changed = git(paths.work, 'rev-parse', 'HEAD');
  info(`git commit ${short(changed)} "staging: new greeting, no Service" && git push`);
  await previewDiff(staging);
  const changeJob = await followJob(
    pushgate,
    await sendPush(pushgate, staging.branch, before, changed, 'staging: new greeting, no Service'),
  );
  expectActions(changeJob, {
    'ConfigMap/web-config': 'configured',
    'Deployment/web': 'unchanged',
    'Service/web': 'pruned',
  });
  await showCluster(kc, staging.namespace);

  step('Rolling staging back: git revert, push');
  git(paths.work, 'revert', '--no-edit', 'HEAD');
  git(paths.work, 'push', '--quiet', 'origin', staging.branch);
  const reverted = git(paths.work, 'rev-parse', 'HEAD');
  info(`git revert ${short(changed)} -> ${short(reverted)} && git push`);
  const revertJob = await followJob(
    pushgate,
    await sendPush(pushgate, staging.branch, changed, reverted, `Revert "staging: new greeting, no Service"`),
  );
  expectActions(revertJob, { 'ConfigMap/web-config': 'configured', 'Service/web': 'created' });
  await showCluster(kc, staging.namespace);

  step('GET /environments');
  const response = await fetch(`${pushgate.url}/environments`);
  const { environments: listed } = (await response.json()) as {
    environments: {
      name: string;
      branch: string;
      lastAppliedSha: string | null;
      lastJob: { id: string; state: string } | null;
    }[];
  };
  for (const e of listed) {
    info(
      `${e.name.padEnd(11)} ${e.branch.padEnd(15)} applied ${short(e.lastAppliedSha)}  last job ${e.lastJob?.state ?? '-'}`,
    );
  }
}

async function main(): Promise<number> {
  installSignalHandlers();
  try {
    await runDemo();
    await cleanup();
    say(
      `\nDemo finished in ${seconds(Date.now() - started)}: every push became a deploy, the revert rolled staging back.`,
    );
    if (cleanupWarnings.length > 0)
      say(`With ${cleanupWarnings.length} cleanup warning(s): see WARNING above.`);
    say(`Files kept in ${demoDir} (the repository, the config, pushgate.log).`);
    return 0;
  } catch (error) {
    // Interrupted: the signal handler reports and cleans up; the flow just stops.
    if (interruption.signal.aborted) return new Promise<number>(() => undefined);
    say(`\nDemo failed: ${(error as Error).message}`);
    if (!(error instanceof DemoFailure) && process.env.PUSHGATE_DEMO_DEBUG && error instanceof Error)
      say(error.stack);
    if (existsSync(paths.log)) say(`pushgate's log: ${paths.log}`);
    await cleanup();
    return 1;
  }
}

process.exitCode = await main();
