#!/usr/bin/env node
// The seed's graphics example (analyze_image → optimize_compression → apply_effects, parallel, auto_chain),
// runnable. The seed makes its bundle of servers [1, 2, 3] and sends analyze_image to index 0 and
// optimize_compression to index 1 — but only the graphics server (3) has these tools, so that bundle is
// refused with a 400 naming step 0. Here the bundle is [3, 3, 3]: the workflow is the seed's, as written.
// `optimize_compression` with `args: {}` gets its required `image` from analyze_image's result, and
// apply_effects gets the compressed image the same way (implicit chaining).
//
//   SWITCHBOARD_API_TOKEN=$(cat data/api-token) node examples/clients/bundle-graphics.mjs [image-url]
//
// SWITCHBOARD_URL (default http://127.0.0.1:3000) is the hub. Without an image URL, a small inline PNG is used.

import { api } from './hub-api.mjs';

// A 16×16 PNG, inline so that the example needs no network.
const imageUrl =
  process.argv[2] ??
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAGUlEQVQokWM4UaFBEmIY1VAxGkonhmvSAAADaGgQExd+HAAAAABJRU5ErkJggg==';
const effects = ['greyscale', 'resize:8x8'];

const { bundleId } = await api('POST', '/api/mcp/bundle/create', {
  bundleName: 'Graphics Processing Pipeline',
  serverIds: [3, 3, 3],
  bundleConfig: { auto_chain: true, parallel: true, share_context: true },
});
console.log(`bundle ${bundleId}`);

const result = await api('POST', '/api/mcp/bundle/execute', {
  bundleId,
  workflow: {
    steps: [
      { server: 0, tool: 'analyze_image', args: { imageUrl } },
      { server: 1, tool: 'optimize_compression', args: {} },
      { server: 2, tool: 'apply_effects', args: { effects } },
    ],
  },
});

for (const step of result.results) {
  const head = `step ${step.step} ${step.tool} on server ${step.serverId}: ${step.status} in ${step.durationMs} ms`;
  if (!step.ok) {
    console.log(`${head} — ${step.error?.code}: ${step.error?.message}`);
    continue;
  }
  const r = step.result;
  console.log(`${head} — ${r.format} ${r.width}×${r.height}, ${r.bytes ?? r.bytesAfter ?? '?'} bytes`);
}
console.log(`execution ${result.executionId}: ${result.status} in ${result.durationMs} ms`);
process.exitCode = result.success ? 0 : 1;
