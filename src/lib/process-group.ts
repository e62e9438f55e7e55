import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface ProcessGroupOptions {
  cwd?: string;
  env: NodeJS.ProcessEnv;
  /** What the command reads on its stdin, which is closed after it; closed at once without. */
  input?: string | Buffer;
}

/**
 * Spawns `command` (stdin closed, or given `input`; stdout and stderr piped) as the leader of
 * a process group of its own, so that killProcessGroup ends it together with every helper it
 * started (git's remote helpers, ssh, index-pack). The group also ends when this process
 * does, however it dies: see GroupWatchdog.
 */
export function spawnProcessGroup(
  command: string,
  args: readonly string[],
  options: ProcessGroupOptions,
): ChildProcessByStdio<Writable | null, Readable, Readable> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  if (options.input !== undefined) {
    // A command that exits (or is killed) before reading it all closes the pipe: not an error here.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
  }
  const { pid } = child;
  if (pid !== undefined) {
    watchdog.watch(pid);
    // Not at 'exit': a helper still holding the output open keeps the group alive until 'close'.
    child.once('close', () => watchdog.forget(pid));
  }
  return child;
}

/**
 * TERM, then KILL a second later to what is still there: on TERM git removes its lock and
 * temporary files (a lock left behind holds up the next fetch of the mirror, a `gc.pid` the
 * next gc, for hours), which a KILL leaves.
 */
export function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined || !signalGroup(pid, 'SIGTERM')) return;
  setTimeout(() => {
    if (signalGroup(pid, 0)) signalGroup(pid, 'SIGKILL');
  }, KILL_AFTER_TERM_MS).unref();
}

const KILL_AFTER_TERM_MS = 1_000;

/** Whether the group was there to signal. */
function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads lines of live group ids from a pipe that only this process writes to, keeping the last.
 * The pipe closes when this process dies, by SIGKILL or the OOM killer as well as by exit;
 * the groups then get TERM, which lets git remove its lock files (a lock left behind holds up
 * the next fetch of the mirror), and KILL a second later, those still there (a group id
 * freed by TERM is not killed under another owner but in the instant between the two). A
 * partial last line, cut by that death, is never read as a list. (`kill -TERM "-G"`: the form
 * dash, bash and busybox all read as a group; busybox refuses `--`, dash `-s KILL "-G"`.)
 */
const WATCHDOG_SCRIPT = `groups=
while read -r line; do groups=$line; done
[ -n "$groups" ] || exit 0
for group in $groups; do kill -TERM "-$group"; done
sleep 1
for group in $groups; do kill -0 "-$group" 2>/dev/null && kill -KILL "-$group"; done`;

/**
 * One shell per process that kills this process's groups when it dies. A child runs on after
 * its parent is SIGKILLed, and git with it, without its time or size limits. Linux's
 * parent-death signal would reach git alone, while its ssh or remote-https helper waits on a
 * silent server for as long as the server keeps quiet; a wrapper turning that signal into a
 * group kill would cost two more execs per git command, and exists on Linux only. The one
 * limit: a death while `spawn` runs (a millisecond) leaves that group unwatched.
 */
class GroupWatchdog {
  /** Live groups, counted: a reused pid's new child must outlive the late 'close' of the old. */
  private readonly groups = new Map<number, number>();
  private shell: ChildProcessByStdio<Writable, null, null> | undefined;
  /** No /bin/sh (Windows, where process groups are not killed either): the groups go unwatched. */
  private unavailable = process.platform === 'win32';

  watch(pid: number): void {
    this.groups.set(pid, (this.groups.get(pid) ?? 0) + 1);
    this.tell();
  }

  forget(pid: number): void {
    const count = (this.groups.get(pid) ?? 0) - 1;
    if (count > 0) this.groups.set(pid, count);
    else this.groups.delete(pid);
    this.tell();
  }

  private tell(): void {
    if (!this.shell && this.groups.size > 0 && !this.unavailable) this.shell = this.start();
    this.shell?.stdin?.write(`${[...this.groups.keys()].join(' ')}\n`);
  }

  private start(): ChildProcessByStdio<Writable, null, null> | undefined {
    try {
      return this.spawnShell();
    } catch {
      // spawn throws (ENOMEM, say) rather than emitting 'error': the git already started
      // must still get its timer and reader, so it goes unwatched, and the next spawn tries again.
      return undefined;
    }
  }

  private spawnShell(): ChildProcessByStdio<Writable, null, null> {
    // Detached: Ctrl-C in a terminal must not stop it before pushgate has stopped its gits.
    // PATH alone (for sleep): a process that lives as long as pushgate need not hold its secrets.
    const startedAt = Date.now();
    const shell = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'pushgate-group-watchdog'], {
      detached: true,
      env: { PATH: process.env.PATH },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const gone = (): void => {
      if (this.shell !== shell) return;
      this.shell = undefined;
      // Killed by someone while groups are live: another takes its place at once, not at the
      // next spawn, which may come too late. One that ended at once is broken: left to that spawn.
      if (Date.now() - startedAt >= SHELL_RESTART_AFTER_MS) this.tell();
    };
    shell.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'EACCES') this.unavailable = true;
      gone();
    });
    shell.on('exit', gone);
    shell.stdin.on('error', () => undefined);
    // It must not keep this process alive: its end is the signal it waits for.
    shell.unref();
    if (shell.stdin instanceof Socket) shell.stdin.unref();
    return shell;
  }
}

const SHELL_RESTART_AFTER_MS = 1_000;

/** Process-wide, as what it watches for is the end of this process. */
const watchdog = new GroupWatchdog();
