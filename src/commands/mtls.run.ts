import { action } from './action.js';
import { UsageError, VerificationError } from '../core/errors.js';
import { runMtls, type MtlsSettings } from '../demo/mtls.js';
import { parseScenarioCommon } from '../demo/scenario-run.js';
import { MODES } from './mtls.js';

export const run = action<MtlsSettings>(
  (opts, args) => {
    if (!MODES.includes(args[0])) throw new UsageError(`unknown mtls mode "${args[0]}"`, { hint: `choose one of ${MODES.join(', ')}` });
    if (args[0] === 'clear' && opts.verify) throw new UsageError('mtls clear leaves no policy to --verify', { hint: 'verify a mode: meshdemo mtls strict --verify' });
    return { ...parseScenarioCommon(opts), mode: args[0] === 'clear' ? undefined : (args[0].toUpperCase() as 'STRICT' | 'PERMISSIVE') };
  },
  async (ctx) => {
    const { lines, checks } = await runMtls(ctx, { acquireLock: () => ctx.lock.acquire(), print: (l) => ctx.ui.print(l), info: (l) => ctx.log.info(l) });
    const off = checks.filter((c) => !c.ok);
    if (off.length) {
      throw new VerificationError(`what --verify measured is not what mtls ${ctx.settings.mode?.toLowerCase()} does: ${off.map((c) => c.label).join(', ')}`, {
        details: lines,
        hint: `look for another PeerAuthentication that applies to micro-api: kubectl get peerauthentication -A`,
      });
    }
    ctx.ui.result(true, { mtls: ctx.settings.mode ?? null, checks });
  },
);
