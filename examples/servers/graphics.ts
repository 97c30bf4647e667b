/**
 * Example server 3, "graphics": `analyze_image`, `optimize_compression`, `apply_effects` and
 * `optimize_images` (optimize_compression over a list), with sharp.
 *
 * Bundles chain these by name: analyze_image and optimize_compression return the image as `image`
 * (base64) in their structured result, and the tools that work on one image *require* an `image` input,
 * so that `optimize_compression {}` after `analyze_image {imageUrl}` is filled from the step before.
 * `image` takes base64, a data: URL or an http(s) URL.
 */
import { type ContentBlock, McpServer, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';
import {
  analyzeImage,
  applyEffects,
  compressionSchema,
  defaultEffectFormat,
  EFFECT_OUTPUT_FORMATS,
  effectSchema,
  effectsResultSchema,
  imageInfoSchema,
  loadImage,
  MAX_IMAGE_BYTES,
  MAX_IMAGE_CHARS,
  MAX_PIXELS,
  OUTPUT_FORMATS,
  optimizeCompression,
  parseEffect,
} from './image-ops.js';
import {
  isCallerError,
  isEntryPoint,
  jsonResult,
  mapWithLimit,
  reportProgress,
  runStdioServer,
  ToolInputError,
  toolHandler,
} from './stdio-server.js';

const NAME = 'graphics';
const MAX_IMAGES = 20;
const DEFAULT_QUALITY = 75;
const DEFAULT_EFFECTS_QUALITY = 80;

const imageField = z
  .string()
  .min(1)
  .max(MAX_IMAGE_CHARS, `images are limited to ${MAX_IMAGE_BYTES} bytes`)
  .describe('The image: base64, a data: URL, or an http(s) URL');
const imageUrlField = z
  .string()
  .min(1)
  .max(MAX_IMAGE_CHARS, `images are limited to ${MAX_IMAGE_BYTES} bytes`)
  .describe('http(s) or data: URL of the image');
const qualityField = z.number().int().min(1).max(100);
const formatField = z.enum(OUTPUT_FORMATS);

const analyzeInput = z.object({ image: imageField.optional(), imageUrl: imageUrlField.optional() });
const compressionInput = z.object({
  image: imageField,
  format: formatField.optional().describe('Target format (default webp)'),
  quality: qualityField.optional().describe(`1-100 (default ${DEFAULT_QUALITY})`),
});
const effectsInput = z.object({
  image: imageField,
  effects: z.array(effectSchema).max(20).describe('Applied in order'),
  format: z
    .enum(EFFECT_OUTPUT_FORMATS)
    .optional()
    .describe("Output format (default: the image's own, else png)"),
  quality: qualityField.optional().describe(`1-100 (default ${DEFAULT_EFFECTS_QUALITY})`),
});
const batchInput = z.object({
  images: z.array(imageField).max(MAX_IMAGES).optional(),
  imageUrls: z.array(imageUrlField).max(MAX_IMAGES).optional(),
  format: formatField.optional().describe('Target format (default webp)'),
  quality: qualityField.optional().describe(`1-100 (default ${DEFAULT_QUALITY})`),
});

const batchItemSchema = compressionSchema.omit({ image: true }).partial().extend({
  index: z.number().int(),
  source: z.string(),
  ok: z.boolean(),
  error: z.string().nullable(),
  image: z.string().nullable(),
});
type BatchItem = z.infer<typeof batchItemSchema>;

const batchOutput = z.object({
  results: z.array(batchItemSchema),
  count: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  format: z.string(),
  quality: z.number().int(),
  totalBytesBefore: z.number().int(),
  totalBytesAfter: z.number().int(),
  totalBytesSaved: z.number().int(),
  ratio: z.number(),
});

function imageContent(data: string, mimeType: string): ContentBlock {
  return { type: 'image', data, mimeType };
}

async function analyze(args: z.infer<typeof analyzeInput>, ctx: ServerContext) {
  const spec = args.image ?? args.imageUrl;
  if (spec === undefined) throw new ToolInputError('Give the image (base64) or an imageUrl');
  if (args.image === undefined && !/^(https?|data):/i.test(spec)) {
    throw new ToolInputError('imageUrl must be an http(s) or data: URL');
  }
  const info = await analyzeImage(await loadImage(spec, ctx.mcpReq.signal));
  return jsonResult(info, { omitFromText: ['image'] });
}

async function compress(args: z.infer<typeof compressionInput>, ctx: ServerContext) {
  const image = await loadImage(args.image, ctx.mcpReq.signal);
  const { result } = await optimizeCompression(image, args.format ?? 'webp', args.quality ?? DEFAULT_QUALITY);
  return jsonResult(result, {
    omitFromText: ['image'],
    content: [imageContent(result.image, result.mimeType)],
  });
}

async function effects(args: z.infer<typeof effectsInput>, ctx: ServerContext) {
  // Parse every effect before loading anything: a typo is reported without fetching the image.
  const parsed = args.effects.map(parseEffect);
  const image = await loadImage(args.image, ctx.mcpReq.signal);
  const { result } = await applyEffects(
    image,
    parsed,
    args.format ?? defaultEffectFormat(image.format),
    args.quality ?? DEFAULT_EFFECTS_QUALITY,
    ctx.mcpReq.signal,
  );
  return jsonResult(result, {
    omitFromText: ['image'],
    content: [imageContent(result.image, result.mimeType)],
  });
}

async function batch(args: z.infer<typeof batchInput>, ctx: ServerContext) {
  const specs = [...(args.images ?? []), ...(args.imageUrls ?? [])];
  if (specs.length === 0) throw new ToolInputError('Give images (base64 or URLs) or imageUrls');
  if (specs.length > MAX_IMAGES) throw new ToolInputError(`At most ${MAX_IMAGES} images per call`);
  const format = args.format ?? 'webp';
  const quality = args.quality ?? DEFAULT_QUALITY;
  let finished = 0;
  const results = await mapWithLimit(
    specs,
    2,
    async (spec, index): Promise<BatchItem> => {
      ctx.mcpReq.signal.throwIfAborted();
      const label = /^https?:/i.test(spec) ? spec : `#${index + 1}`;
      try {
        const { result } = await optimizeCompression(
          await loadImage(spec, ctx.mcpReq.signal),
          format,
          quality,
        );
        return { ...result, index, source: label, ok: true, error: null };
      } catch (error) {
        // One bad image is reported in its own entry; the others are still optimised.
        if (!isCallerError(error)) throw error;
        return { index, source: label, ok: false, error: error.message, image: null };
      }
    },
    async (item) => {
      finished++;
      const message = item.ok
        ? `optimized ${item.source}: ${item.bytesBefore} → ${item.bytesAfter} bytes`
        : `failed ${item.source}: ${item.error}`;
      await reportProgress(ctx, finished, specs.length, message);
    },
  );
  const ok = results.filter((r) => r.ok);
  if (ok.length === 0)
    throw new ToolInputError(`No image could be optimised: ${results.map((r) => r.error).join('; ')}`);
  const before = ok.reduce((sum, r) => sum + (r.bytesBefore ?? 0), 0);
  const after = ok.reduce((sum, r) => sum + (r.bytesAfter ?? 0), 0);
  const structured: z.infer<typeof batchOutput> = {
    results,
    count: results.length,
    succeeded: ok.length,
    failed: results.length - ok.length,
    format,
    quality,
    totalBytesBefore: before,
    totalBytesAfter: after,
    totalBytesSaved: before - after,
    ratio: Math.round((after / before) * 10_000) / 10_000,
  };
  const text = {
    ...structured,
    results: results.map((r) => ({ ...r, image: r.image === null ? null : '[image]' })),
  };
  return {
    content: [
      { type: 'text' as const, text: JSON.stringify(text) },
      ...ok.map((r) => imageContent(r.image as string, r.mimeType as string)),
    ],
    structuredContent: structured,
  };
}

export function createGraphicsServer(): McpServer {
  const server = new McpServer(
    { name: NAME, title: 'Graphics', version: '1.0.0' },
    {
      capabilities: { tools: {} },
      instructions:
        `Image analysis, compression and effects. Images up to ${MAX_IMAGE_BYTES} bytes and ${MAX_PIXELS} pixels, ` +
        'as base64, data: URLs or http(s) URLs.',
    },
  );
  server.registerTool(
    'analyze_image',
    {
      description:
        'Describe an image: width, height, format, bytes, alpha, dominant and mean colour. Also returns the ' +
        'image as `image` (base64) for a following step.',
      inputSchema: analyzeInput,
      outputSchema: imageInfoSchema,
    },
    toolHandler(NAME, 'analyze_image', analyze),
  );
  server.registerTool(
    'optimize_compression',
    {
      description:
        'Re-encode an image as webp, avif, jpeg or png at a quality, and report the bytes saved. Returns the ' +
        'new image as image content and as `image` (base64).',
      inputSchema: compressionInput,
      outputSchema: compressionSchema,
    },
    toolHandler(NAME, 'optimize_compression', compress),
  );
  server.registerTool(
    'apply_effects',
    {
      description:
        'Apply effects in order (resize, greyscale, blur, rotate, sharpen, flip, flop, negate, normalize, ' +
        'tint). Returns the new image as image content and as `image` (base64).',
      inputSchema: effectsInput,
      outputSchema: effectsResultSchema,
    },
    toolHandler(NAME, 'apply_effects', effects),
  );
  server.registerTool(
    'optimize_images',
    {
      description:
        'optimize_compression over a list of images (images: base64 or URLs, or imageUrls), with one ' +
        'progress notification per image.',
      inputSchema: batchInput,
      outputSchema: batchOutput,
    },
    toolHandler(NAME, 'optimize_images', batch),
  );
  return server;
}

if (isEntryPoint(import.meta.url)) runStdioServer(NAME, createGraphicsServer);
