import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, LockLostError, PreflightError } from '../core/errors.js';
import type { StepLog } from '../core/events.js';
import { MANAGED_BY } from './inventory.js';
import { parseDuration } from '../core/options.js';
import { pidNamespace, processGone } from '../core/process.js';
import { KubeApiError, KubeForbiddenError, type KubeClient, type KubeObject } from '../kube/client.js';

/**
 * The cluster-wide lock that keeps two `meshdemo up`/`down`/`expose` runs from changing one cluster at once.
 *
 * It is a coordination.k8s.io/v1 Lease `meshdemo-lock` in the `default` namespace: `default` always exists (the
 * app namespace may not exist before up creates it, and may be deleted by down), and unlike `kube-system` it is
 * writable for users who are not cluster admins. The holder (holderIdentity `<hostname>/<pid>/<random>/<pid
 * namespace>`, see pidNamespace) renews it every 10 s. Released (deleted) when the command ends, also on errors and Ctrl-C.
 *
 * Expiry is judged as client-go's leader election does (k8s.io/client-go/tools/leaderelection/leaderelection.go,
 * `observedTime`): a waiting run notes, on its own monotonic clock, when it last saw the Lease change; another
 * holder's lock is free once this run has seen it unchanged for leaseDurationSeconds. The holder's renewTime is
 * never compared with our clock, so clock skew between machines cannot hand the lock to two runs. A holder that
 * was a process on this machine, in our PID namespace, that no longer exists is taken over at once; any other
 * holder — also one on the same hostname in another container — only after the observed expiry. A second run waits up to
 * MESHDEMO_LOCK_WAIT (default 45s, so a dead holder's lock is taken over within it), then refuses with a
 * PreflightError (exit 3) naming the holder.
 *
 * The holder keeps renewing; a renewal that fails (API server restarting) is retried until the lease would really
 * expire — leaseDurationSeconds after the last successful renewal, less a margin. If it cannot renew by then, or
 * finds the Lease taken or deleted, the lock is lost: onLost aborts the run with a LockLostError (exit 3); what was
 * already written stays recorded.
 */
export const LOCK_NAMESPACE = 'default';
export const LOCK_NAME = 'meshdemo-lock';
export const LEASE_DURATION_SECONDS = 30;
const RENEW_EVERY_MS = 10_000;
const DEFAULT_WAIT_MS = 45_000;
/** A renewal must have succeeded this long before the lease would expire, or the lock counts as lost. */
const RENEW_MARGIN_MS = 3_000;
/** One renewal request may take this long before it is abandoned and tried again. */
const RENEW_ATTEMPT_MS = 4_000;
const COMMAND_ANNOTATION = 'meshdemo.io/command';

const LEASE_REF = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: LOCK_NAMESPACE, name: LOCK_NAME };

/** MESHDEMO_LOCK_WAIT: how long to wait for another run's lock ("0", "45s", "2m"; a bare number is seconds). */
export function lockWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MESHDEMO_LOCK_WAIT;
  if (raw === undefined || raw.trim() === '') return DEFAULT_WAIT_MS;
  return parseDuration(raw, 'MESHDEMO_LOCK_WAIT', { allowZero: true });
}

/** RFC 3339 with microseconds, as metav1.MicroTime is written. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaseHolder {
  identity: string;
  command?: string;
  renewedAt?: Date;
}

export function describeHolder(lease: KubeObject | undefined): LeaseHolder | undefined {
  const identity: string | undefined = lease?.spec?.holderIdentity;
  if (!lease || !identity) return undefined;
  const renewed = lease.spec.renewTime ?? lease.spec.acquireTime;
  return { identity, command: lease.metadata.annotations?.[COMMAND_ANNOTATION], renewedAt: renewed ? new Date(renewed) : undefined };
}

/** `<hostname>/<pid>/<random>/<pid namespace>`: who holds the lock, and where its PID can be looked up. */
export function newHolderIdentity(): string {
  return `${os.hostname()}/${process.pid}/${randomBytes(4).toString('hex')}/${pidNamespace()}`;
}

/**
 * A holder on this machine whose process is gone (killed -9, crashed) holds nothing. "On this machine" means the
 * same hostname AND the same PID namespace of the same boot: a holder from another PID namespace (another
 * container with the host's name, or an identity that names none) is never judged by its PID.
 */
export function holderIsDeadLocalProcess(identity: string, hostname = os.hostname()): boolean {
  const [host, pidText, , holderNamespace] = identity.split('/');
  return host === hostname && processGone(Number(pidText), holderNamespace ?? '');
}

export interface ClusterLockOptions {
  /** What holds it (up, down, expose): shown to whoever waits for it. */
  command: string;
  log: StepLog;
  signal?: AbortSignal;
  waitMs?: number;
  /** Called once when the lock is lost while held; the command aborts its run with this error. */
  onLost?: (err: LockLostError) => void;
}

/** Monotonic milliseconds: not moved by changes of the wall clock. */
const monotonicMs = () => performance.now();

/** What a run last saw of the Lease, and when (on its own monotonic clock): client-go's observedRecord/observedTime. */
interface Observation {
  record: string;
  at: number;
}

function recordOf(lease: KubeObject | undefined): string {
  const spec = lease?.spec ?? {};
  return JSON.stringify([spec.holderIdentity ?? '', spec.renewTime ?? '', spec.acquireTime ?? '', spec.leaseDurationSeconds ?? '', spec.leaseTransitions ?? '']);
}

/** One look at the Lease while acquiring: who holds it and whether it is free for this run. */
interface LeaseSighting {
  live: KubeObject | undefined;
  holder: LeaseHolder | undefined;
  /** How long this run has seen the Lease unchanged. */
  unchangedMs: number;
  durationMs: number;
  /** The holder was a process on this machine that no longer runs. */
  deadLocal: boolean;
  free: boolean;
}

/** The refusal once MESHDEMO_LOCK_WAIT has passed with the lock still held by another run. */
function heldByAnother(holder: LeaseHolder, durationMs: number): PreflightError {
  const what = `meshdemo ${holder.command ?? 'up/down'}`;
  return new PreflightError(`another ${what} (holder ${holder.identity}) is running against this cluster`, {
    hint: `wait for it to finish and re-run; if it died, its lock (Lease ${LOCK_NAMESPACE}/${LOCK_NAME}) is taken over once it has gone unrenewed for ${Math.round(durationMs / 1000)}s while a run waits for it (MESHDEMO_LOCK_WAIT)`,
  });
}

export class ClusterLock {
  readonly identity = newHolderIdentity();
  private held = false;
  private kube?: KubeClient;
  private observed?: Observation;
  /**
   * Monotonic time at which the last successful renewal (or the acquisition) was SENT: the lease runs from when
   * the API server took it, which can be no earlier — timing it from the answer would overstate what is left.
   */
  private renewedAt = 0;
  private renewal?: Promise<void>;
  private stopRenewing = new AbortController();

  constructor(
    private readonly connect: () => Promise<KubeClient>,
    private readonly opts: ClusterLockOptions,
  ) {}

  get isHeld(): boolean {
    return this.held;
  }

  /** Notes when the Lease last changed, as seen from here; returns how long it has been unchanged (ms). */
  private observe(lease: KubeObject | undefined): number {
    const record = recordOf(lease);
    const now = monotonicMs();
    if (!this.observed || this.observed.record !== record) this.observed = { record, at: now };
    return now - this.observed.at;
  }

  /** Takes the lock, waiting up to MESHDEMO_LOCK_WAIT for another holder; idempotent. */
  async acquire(): Promise<void> {
    if (this.held) return;
    const kube = (this.kube = await this.connect());
    if (!(await kube.serves(LEASE_REF.apiVersion, LEASE_REF.kind))) {
      this.opts.log.warn('this cluster serves no coordination.k8s.io/v1 Leases: running without the lock against concurrent meshdemo runs');
      return;
    }
    const waitMs = this.opts.waitMs ?? lockWaitMs();
    const deadline = Date.now() + waitMs;
    let announced = false;
    for (let attempt = 0; ; attempt++) {
      if (this.opts.signal?.aborted) throw new InterruptedError();
      const sighting = await this.lookAtLease(kube);
      if (!sighting.holder || sighting.free) {
        if (await this.take(kube, sighting)) return;
        continue; // someone else was faster (or it just vanished): look again
      }
      const holder = sighting.holder;
      if (Date.now() >= deadline) throw heldByAnother(holder, sighting.durationMs);
      if (!announced) {
        announced = true;
        this.opts.log.info(`waiting up to ${Math.round(waitMs / 1000)}s for another meshdemo ${holder.command ?? 'run'} (holder ${holder.identity}) to finish`);
      }
      const pause = Math.min(1000, 200 * 2 ** attempt, Math.max(50, deadline - Date.now()));
      await sleep(pause, undefined, { signal: this.opts.signal }).catch(() => {
        throw new InterruptedError();
      });
    }
  }

  /** Reads the Lease and judges whether this run may take it now. */
  private async lookAtLease(kube: KubeClient): Promise<LeaseSighting> {
    const live = await this.guard(() => kube.get(LEASE_REF));
    const holder = describeHolder(live);
    const unchangedMs = this.observe(live);
    const durationMs = Number(live?.spec?.leaseDurationSeconds ?? LEASE_DURATION_SECONDS) * 1000;
    const deadLocal = holder !== undefined && holderIsDeadLocalProcess(holder.identity);
    const expired = holder !== undefined && unchangedMs >= durationMs;
    const free = !holder || holder.identity === this.identity || expired || deadLocal;
    return { live, holder, unchangedMs, durationMs, deadLocal, free };
  }

  /** Writes the Lease as ours and starts renewing it; false when someone else changed it first (look again). */
  private async take(kube: KubeClient, sighting: LeaseSighting): Promise<boolean> {
    const sentAt = monotonicMs();
    try {
      await this.writeLease(kube, sighting);
    } catch (err) {
      if (err instanceof KubeApiError && !sighting.live && err.status === 404) {
        throw new PreflightError(`cannot take meshdemo's lock: namespace ${LOCK_NAMESPACE} does not exist`, { hint: `create it (kubectl create namespace ${LOCK_NAMESPACE})` });
      }
      if (!(err instanceof KubeApiError && (err.status === 409 || err.status === 404))) throw err;
      return false;
    }
    this.held = true;
    this.renewedAt = sentAt;
    this.stopRenewing = new AbortController();
    this.renewal = this.keepRenewing(kube, this.stopRenewing.signal);
    this.opts.log.debug(`holding Lease ${LOCK_NAMESPACE}/${LOCK_NAME} as ${this.identity}`);
    return true;
  }

  /** Creates the Lease, or takes over the one seen (conditionally on its resourceVersion). */
  private async writeLease(kube: KubeClient, { live, holder, unchangedMs, deadLocal }: LeaseSighting): Promise<void> {
    const now = new Date();
    const spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: LEASE_DURATION_SECONDS,
      acquireTime: microTime(now),
      renewTime: microTime(now),
    };
    const annotations = { [COMMAND_ANNOTATION]: this.opts.command };
    if (!live) {
      await this.guard(() =>
        kube.create({ ...LEASE_REF, metadata: { name: LOCK_NAME, namespace: LOCK_NAMESPACE, labels: { ...MANAGED_BY }, annotations }, spec: { ...spec, leaseTransitions: 0 } }),
      );
      return;
    }
    // resourceVersion in the patch makes it conditional: a concurrent taker gets 409 and looks again
    await this.guard(() =>
      kube.mergePatch(LEASE_REF, {
        metadata: { resourceVersion: live.metadata.resourceVersion, annotations },
        spec: { ...spec, leaseTransitions: Number(live.spec?.leaseTransitions ?? 0) + (holder ? 1 : 0) },
      }),
    );
    if (holder && holder.identity !== this.identity) {
      this.opts.log.note(`took over the lock of ${holder.identity}, which ${deadLocal ? 'is no longer running' : `had not renewed it for ${Math.round(unchangedMs / 1000)}s`}`);
    }
  }

  /**
   * Deletes the Lease when its holder is gone — a process on this machine that no longer runs, e.g. an up that was
   * killed — or when it names no holder. A remote holder is never judged from here without watching its Lease for
   * a whole lease duration (see acquire). Returns the abandoned holder, if there was one.
   */
  async clearStale(): Promise<string | undefined> {
    const kube = (this.kube ??= await this.connect());
    if (!(await kube.serves(LEASE_REF.apiVersion, LEASE_REF.kind))) return undefined;
    const live = await kube.get(LEASE_REF);
    const holder = describeHolder(live);
    if (!live) return undefined;
    const stale = !holder || holderIsDeadLocalProcess(holder.identity);
    if (!stale) return undefined;
    try {
      await kube.request('DELETE', await kube.pathFor(LEASE_REF), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion } },
      });
      return holder?.identity ?? '(nobody)';
    } catch (err) {
      if (err instanceof KubeApiError && (err.status === 409 || err.status === 404)) return undefined; // taken or removed meanwhile
      throw err;
    }
  }

  /** Deletes the Lease if it is still ours; never throws (the lock expires anyway). Works after Ctrl-C. */
  async release(): Promise<void> {
    if (!this.held || !this.kube) return;
    this.held = false;
    this.stopRenewing.abort();
    await this.renewal;
    const kube = this.kube;
    // the command's signal may be aborted (Ctrl-C): these requests get one of their own
    const signal = new AbortController().signal;
    try {
      const path = await kube.pathFor(LEASE_REF);
      const live = await kube.request<KubeObject>('GET', path, { signal, retryMs: 5000 });
      if (live?.spec?.holderIdentity !== this.identity) return;
      await kube.request('DELETE', path, {
        signal,
        retryMs: 5000,
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion } },
      });
    } catch (err) {
      this.opts.log.debug(`could not release the lock: ${(err as Error).message}; it expires in ${LEASE_DURATION_SECONDS}s`);
    }
  }

  /**
   * Renews every RENEW_EVERY_MS. A failed renewal is retried until the lease would expire (less a margin),
   * measured on our own clock from the last successful renewal; then, or when the Lease is no longer ours, the
   * lock is lost. Never rejects.
   */
  private async keepRenewing(kube: KubeClient, stop: AbortSignal): Promise<void> {
    const idle = (ms: number) => sleep(ms, undefined, { signal: stop }).then(() => true, () => false);
    while (await idle(RENEW_EVERY_MS)) {
      let lastError: unknown;
      for (let attempt = 0; ; attempt++) {
        const left = this.renewedAt + LEASE_DURATION_SECONDS * 1000 - RENEW_MARGIN_MS - monotonicMs();
        if (left <= 0) {
          const why = lastError instanceof Error ? lastError.message : String(lastError ?? 'no answer');
          return this.lost(`could not renew it for ${LEASE_DURATION_SECONDS - RENEW_MARGIN_MS / 1000}s (last error: ${why})`);
        }
        // an attempt that gets no answer (an API server that is starting can accept a connection and say nothing)
        // is abandoned after a few seconds and tried again
        const limit = Math.min(RENEW_ATTEMPT_MS, left);
        const timer = new AbortController();
        const abandon = () => timer.abort();
        stop.addEventListener('abort', abandon, { once: true });
        try {
          const outcome = await Promise.race([this.renewOnce(kube, limit), sleep(limit, 'no answer' as const, { signal: timer.signal })]);
          if (stop.aborted) return;
          if (outcome === 'no answer') {
            lastError = new Error(`a renewal got no answer within ${limit >= 1000 ? `${Math.round(limit / 1000)}s` : `${Math.round(limit)}ms`}`);
            this.opts.log.debug(`renewing the lock: ${(lastError as Error).message} (retrying)`);
            continue;
          }
          if (typeof outcome === 'string') return this.lost(outcome);
          this.renewedAt = outcome.sentAt;
          break;
        } catch (err) {
          if (stop.aborted) return;
          lastError = err;
          this.opts.log.debug(`renewing the lock failed (retrying): ${(err as Error).message}`);
          if (!(await idle(Math.min(1000, 200 * 2 ** attempt)))) return;
        } finally {
          timer.abort();
          stop.removeEventListener('abort', abandon);
        }
      }
    }
  }

  /**
   * One renewal: when its PATCH was sent (monotonic), or why the lock is no longer ours. Throws on failures worth
   * retrying.
   */
  private async renewOnce(kube: KubeClient, leftMs: number): Promise<{ sentAt: number } | string> {
    // the command's signal may be aborted (Ctrl-C) while the run still winds down under the lock
    const signal = new AbortController().signal;
    const path = await kube.pathFor(LEASE_REF);
    // each attempt is short (an API server going down can leave a request unanswered), the loop retries
    const attempt = { signal, retryMs: 0, attemptTimeoutMs: Math.max(500, Math.min(RENEW_ATTEMPT_MS, leftMs)) };
    let live: KubeObject;
    try {
      live = await kube.request<KubeObject>('GET', path, attempt);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return 'its Lease was deleted';
      throw err;
    }
    if (!this.held) return { sentAt: this.renewedAt };
    if (live.spec?.holderIdentity !== this.identity) return `it was taken by ${live.spec?.holderIdentity || 'nobody'}`;
    const sentAt = monotonicMs();
    try {
      await kube.request('PATCH', path, {
        ...attempt,
        contentType: 'application/merge-patch+json',
        body: { metadata: { resourceVersion: live.metadata.resourceVersion }, spec: { renewTime: microTime() } },
      });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return 'its Lease was deleted';
      throw err; // 409: changed meanwhile — the retry reads it again
    }
    return { sentAt };
  }

  private lost(why: string): void {
    if (!this.held) return;
    this.held = false;
    this.opts.onLost?.(
      new LockLostError(`lost meshdemo's lock (Lease ${LOCK_NAMESPACE}/${LOCK_NAME}): ${why}; stopped so that no two runs change this cluster at once`, {
        hint: 'what was done so far is recorded: check that no other meshdemo run is active, then re-run the command',
      }),
    );
  }

  /** A refusal to touch the Lease is a permission problem the user can act on. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KubeForbiddenError) {
        throw new PreflightError(`cannot take meshdemo's lock (Lease ${LOCK_NAMESPACE}/${LOCK_NAME}): ${err.message}`, {
          hint: `grant get, create, patch and delete on leases.coordination.k8s.io in namespace ${LOCK_NAMESPACE} to this identity`,
        });
      }
      throw err;
    }
  }
}
