import type { CreateServerInput } from './payloads.js';

/**
 * The example servers a fresh hub registers as ids 1, 2 and 3 so that every example in DESIGN.md works
 * as written. Relative paths resolve against the install directory, wherever the hub is started from.
 */
export const exampleServers: readonly CreateServerInput[] = [
  {
    name: 'seo',
    description:
      'SEO Specialist Agent: analyses HTML pages (analyze_seo, analyze) and extracts data (mine-data)',
    transport: 'stdio',
    command: 'node',
    args: ['dist/examples/servers/seo.js'],
  },
  {
    name: 'content',
    description: 'Content writer: titles, meta descriptions and outlines from keywords or an SEO analysis',
    transport: 'stdio',
    command: 'node',
    args: ['dist/examples/servers/content.js'],
    config: { temperature: 0.7, max_tokens: 2000 },
  },
  {
    name: 'graphics',
    description:
      'Image analysis, compression and effects (analyze_image, optimize_compression, apply_effects)',
    transport: 'stdio',
    command: 'node',
    args: ['dist/examples/servers/graphics.js'],
  },
];
