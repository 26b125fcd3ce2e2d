import { action } from './action.js';
import { parseNodeAddress } from '../core/options.js';
import type { LocalClusterState } from '../kind/state.js';
import { parseClusterName } from '../kind/pins.js';
import { recordedLocalCluster } from '../kind/decide.js';
import { gatherStatus, formatStatus, absentLocalCluster, formatAbsentLocalCluster } from '../demo/status.js';

export const run = action<{ nodeAddress?: string; local?: LocalClusterState; recordedContext?: string }>(
  async (opts, _args, global) => {
    const recorded = recordedLocalCluster(global, parseClusterName(opts.clusterName ?? 'meshdemo'));
    return { nodeAddress: opts.nodeAddress !== undefined ? parseNodeAddress(opts.nodeAddress) : undefined, local: recorded.cluster, recordedContext: recorded.context };
  },
  async (ctx) => {
    // meshdemo's local cluster that kind no longer lists: say so, rather than fail to reach its API server
    const absent = ctx.settings.local ? await absentLocalCluster(ctx, ctx.settings.local) : undefined;
    if (absent) {
      if (ctx.options.json) ctx.ui.result(true, { status: absent });
      else ctx.ui.print(formatAbsentLocalCluster(absent));
      return;
    }
    const status = await gatherStatus(ctx);
    if (ctx.options.json) ctx.ui.result(true, { status });
    else ctx.ui.print(formatStatus(status));
  },
  { context: (settings) => settings.recordedContext },
);
