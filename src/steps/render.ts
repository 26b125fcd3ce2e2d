import fs from 'node:fs';
import path from 'node:path';
import type { Context, Step } from '../record/context.js';
import { renderAppManifests } from '../demo/app-manifests.js';
import { resolveImages } from '../demo/image-target.js';
import type { UpSettings } from '../settings.js';

/** `up --render <dir>`: the app manifests written to dir/app.yaml, nothing applied (to stdout: renderedApp, by the command). */
export const renderStep: Step<UpSettings> = {
  id: 'render',
  title: 'Render the demo app manifests',
  readOnly: true,
  async check() {
    return { satisfied: false, detail: 'writes files only' };
  },
  async run(ctx) {
    const dir = String(ctx.settings.render);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'app.yaml');
    fs.writeFileSync(file, await renderedApp(ctx));
    return `wrote ${file}`;
  },
};

/** The app manifests as up would apply them: with the images' references as the images step would publish them. */
export async function renderedApp(ctx: Context<UpSettings>): Promise<string> {
  return renderAppManifests(ctx.options.namespace, await resolveImages(ctx)).text;
}
