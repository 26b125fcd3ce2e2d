import { stepOf, type DownStep } from '../down/phase.js';
import { revertItems, revertServices, serviceReverts } from '../down/service-reverts.js';
import { describeRef } from '../kube/client.js';

export const downDashboards: DownStep = stepOf(
  'down-dashboards',
  'Revert the dashboard Services',
  async (ctx) => {
    const { pending, gone } = await serviceReverts(ctx);
    return {
      items: revertItems('down-dashboards', pending),
      nothing: 'no dashboard Service to revert',
      notes: gone.map((g) => `${describeRef(g.ref)} no longer exists: nothing to revert`),
    };
  },
  async (ctx) => {
    const { pending } = await serviceReverts(ctx);
    await revertServices(ctx, pending);
    return `reverted ${pending.length} Service(s)`;
  },
);
