import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { startTestHub, type TestHub, testToken } from '../helpers/hub.js';

const run = promisify(execFile);

/** The seed's bundle examples against the seeded example servers 1 (seo), 2 (content), 3 (graphics). */
describe('seed bundle examples', () => {
  let t: TestHub;
  let base: string;
  beforeAll(async () => {
    t = await startTestHub('pglite');
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => t?.close());

  it('examples/clients/bundle-seo.mjs: SEO → content (fed the analysis) → graphics, with real results', async () => {
    const { stdout } = await run(process.execPath, [`${projectRoot}/examples/clients/bundle-seo.mjs`], {
      env: { PATH: process.env.PATH ?? '', SWITCHBOARD_URL: base, SWITCHBOARD_API_TOKEN: testToken },
      timeout: 60_000,
    });
    expect(stdout).toMatch(
      /step 0 analyze_seo on server 1: succeeded .*title "Fresh Coffee Beans \| Roastery"/,
    );
    expect(stdout).toMatch(/step 1 generate_content on server 2: succeeded .*title ".*[Cc]offee/);
    expect(stdout).toMatch(/step 2 optimize_images on server 3: succeeded .*— 1\/1 images/);
    expect(stdout).toMatch(/execution exec-\S+: succeeded/);
  });

  it('examples/clients/bundle-graphics.mjs: the seed graphics workflow as written, on a bundle of [3, 3, 3]', async () => {
    const { stdout } = await run(process.execPath, [`${projectRoot}/examples/clients/bundle-graphics.mjs`], {
      env: { PATH: process.env.PATH ?? '', SWITCHBOARD_URL: base, SWITCHBOARD_API_TOKEN: testToken },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/step 0 analyze_image on server 3: succeeded .*png 16×16/);
    expect(stdout).toMatch(/step 1 optimize_compression on server 3: succeeded .*webp 16×16/);
    expect(stdout).toMatch(/step 2 apply_effects on server 3: succeeded .* 8×8/);
    expect(stdout).toMatch(/execution exec-\S+: succeeded/);
  });

  it('generate_content gets the whole analysis object through {{prev.result}}', async () => {
    const create = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/create',
      payload: { bundleName: 'seo-content', serverIds: [1, 2], bundleConfig: { auto_chain: true } },
    });
    const html =
      '<html><head><title>Tea</title></head><body><h1>Green tea guide</h1><p>Green tea, brewed well.</p></body></html>';
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/execute',
      payload: {
        bundleId: create.json().bundleId,
        workflow: {
          steps: [
            { server: 0, tool: 'analyze_seo', args: { html, keywords: ['green tea'] } },
            { server: 1, tool: 'generate_content', args: { analysis: '{{prev.result}}' } },
          ],
        },
      },
    });
    const body = res.json();
    expect(body.status, JSON.stringify(body.results)).toBe('succeeded');
    expect(body.results[1].args.analysis).toEqual(body.results[0].result);
    expect(JSON.stringify(body.results[1].result).toLowerCase()).toContain('green tea');
  });

  it('the graphics example runs as written on a bundle of [3, 3, 3] (implicit chaining of the image)', async () => {
    const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c87828' } })
      .png()
      .toBuffer();
    const create = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/create',
      payload: {
        bundleName: 'Graphics Processing Pipeline',
        serverIds: [3, 3, 3],
        bundleConfig: { auto_chain: true, parallel: true, share_context: true },
      },
    });
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/execute',
      payload: {
        bundleId: create.json().bundleId,
        workflow: {
          steps: [
            {
              server: 0,
              tool: 'analyze_image',
              args: { imageUrl: `data:image/png;base64,${image.toString('base64')}` },
            },
            { server: 1, tool: 'optimize_compression', args: {} },
            { server: 2, tool: 'apply_effects', args: { effects: ['greyscale', 'resize:32x24'] } },
          ],
        },
      },
    });
    const body = res.json();
    expect(body.status, JSON.stringify(body.results)).toBe('succeeded');
    expect(body.results[0].result).toMatchObject({ width: 64, height: 48, format: 'png' });
    expect(body.results[1].args.image).toBe(body.results[0].result.image);
    expect(body.results[2].args.image).toBe(body.results[1].result.image);
    expect(body.results[2].result).toMatchObject({ width: 32, height: 24 });
  });

  it('the graphics example on [1, 2, 3] names the step whose server lacks the tool', async () => {
    const create = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/create',
      payload: { bundleName: 'seed as written', serverIds: [1, 2, 3], bundleConfig: { auto_chain: true } },
    });
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/execute',
      payload: {
        bundleId: create.json().bundleId,
        workflow: {
          steps: [{ server: 0, tool: 'analyze_image', args: { imageUrl: 'data:image/png;base64,AA' } }],
        },
      },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toContain('step 0 (analyze_image): server 1 (index 0) has no tool');
    expect(res.json().error.details.available).toContain('analyze_seo');
  });
});
