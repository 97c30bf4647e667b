#!/usr/bin/env node
// The seed's first bundle example, runnable: a bundle of the example servers 1 (seo), 2 (content) and
// 3 (graphics), run as a chained workflow — analyze_seo → generate_content (fed the whole analysis with
// {{prev.result}}) → optimize_images (fed the images the analysis found without alt text).
//
//   SWITCHBOARD_API_TOKEN=$(cat data/api-token) node examples/clients/bundle-seo.mjs [page-url]
//
// SWITCHBOARD_URL (default http://127.0.0.1:3000) is the hub. Without a page URL, a small page is analysed
// as HTML (with an inline image, so that the graphics step has something real to compress).

import { api } from './hub-api.mjs';

// A 16×16 PNG, inline so that the example needs no network.
const png =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAGUlEQVQokWM4UaFBEmIY1VAxGkonhmvSAAADaGgQExd+HAAAAABJRU5ErkJggg==';
const html = `<html><head><title>Fresh Coffee Beans | Roastery</title>
<meta name="description" content="Single origin coffee beans roasted weekly."></head>
<body><h1>Coffee beans</h1><p>Our coffee beans are roasted weekly. Coffee lovers choose our beans for
their aroma, and our roastery ships fresh coffee every week.</p><img src="${png}"></body></html>`;
const pageUrl = process.argv[2];

const { bundleId } = await api('POST', '/api/mcp/bundle/create', {
  bundleName: 'SEO Analysis Bundle',
  serverIds: [1, 2, 3],
  bundleConfig: { auto_chain: true, parallel: false, share_context: true },
});
console.log(`bundle ${bundleId}`);

const result = await api('POST', '/api/mcp/bundle/execute', {
  bundleId,
  workflow: {
    steps: [
      {
        server: 0,
        tool: 'analyze_seo',
        args: pageUrl ? { url: pageUrl, keywords: ['coffee'] } : { html, keywords: ['coffee'] },
      },
      { server: 1, tool: 'generate_content', args: { analysis: '{{prev.result}}' } },
      { server: 2, tool: 'optimize_images', args: { imageUrls: '{{steps.0.result.images.missingAlt}}' } },
    ],
  },
  context: { campaign_id: 'campaign-123' },
});

for (const step of result.results) {
  const head = `step ${step.step} ${step.tool} on server ${step.serverId}: ${step.status} in ${step.durationMs} ms`;
  if (!step.ok) {
    console.log(`${head} — ${step.error?.code}: ${step.error?.message}`);
    continue;
  }
  const r = step.result;
  if (step.tool === 'analyze_seo')
    console.log(`${head} — score ${r.score}, title ${JSON.stringify(r.title)}`);
  else if (step.tool === 'generate_content') console.log(`${head} — title ${JSON.stringify(r.title)}`);
  else if (step.tool === 'optimize_images')
    console.log(
      `${head} — ${r.succeeded}/${r.count} images, ${r.totalBytesBefore} → ${r.totalBytesAfter} bytes`,
    );
  else console.log(head);
}
console.log(`execution ${result.executionId}: ${result.status} in ${result.durationMs} ms`);
process.exitCode = result.success ? 0 : 1;
