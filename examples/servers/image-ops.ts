/**
 * The graphics server's work with sharp: load an image from base64, a data: URL or an http(s) URL within
 * size and pixel limits, describe it, re-encode it, and apply effects in the order given.
 */
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import * as z from 'zod';
import { fetchUrl } from './fetch-url.js';
import { ToolInputError } from './stdio-server.js';

export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;
/** Decoded pixels, input or output: 40 MP is a 7,300 × 5,500 image, ~160 MB of RGBA in memory. */
export const MAX_PIXELS = 40_000_000;
export const MAX_DIMENSION = 10_000;
/** Base64 of MAX_IMAGE_BYTES plus room for a data: URL header. */
export const MAX_IMAGE_CHARS = Math.ceil(MAX_IMAGE_BYTES / 3) * 4 + 256;

export const OUTPUT_FORMATS = ['webp', 'avif', 'jpeg', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
/** What apply_effects can write back: the optimiser's formats plus the common lossless ones. */
export const EFFECT_OUTPUT_FORMATS = [...OUTPUT_FORMATS, 'gif', 'tiff'] as const;
export type EffectOutputFormat = (typeof EFFECT_OUTPUT_FORMATS)[number];

sharp.cache(false);

const MIME_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  avif: 'image/avif',
  gif: 'image/gif',
  tiff: 'image/tiff',
  svg: 'image/svg+xml',
  heif: 'image/heif',
};

export function mimeTypeOf(format: string): string {
  return MIME_TYPES[format] ?? `image/${format}`;
}

const sharpInput = { limitInputPixels: MAX_PIXELS, failOn: 'error' } as const;

// ---------------------------------------------------------------------------------------------------
// Loading

export interface LoadedImage {
  buffer: Buffer;
  /** The url, or "base64" / "data-url" for inline images. */
  source: string;
  format: string;
  width: number;
  height: number;
}

/** Loads and checks an image given as base64, a data: URL or an http(s) URL. */
export async function loadImage(spec: string, signal: AbortSignal): Promise<LoadedImage> {
  const value = spec.trim();
  let buffer: Buffer;
  let source: string;
  if (/^https?:\/\//i.test(value)) {
    const fetched = await fetchUrl(value, { maxBytes: MAX_IMAGE_BYTES, signal, accept: 'image/*' });
    if (!fetched.ok) throw new ToolInputError(`Fetching ${fetched.finalUrl} answered HTTP ${fetched.status}`);
    buffer = fetched.body;
    source = value;
  } else if (/^data:/i.test(value)) {
    buffer = decodeDataUrl(value);
    source = 'data-url';
  } else {
    buffer = decodeBase64(value);
    source = 'base64';
  }
  const meta = await probe(buffer);
  return { buffer, source, ...meta };
}

function decodeBase64(value: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact === '') throw new ToolInputError('The image is empty');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) {
    throw new ToolInputError('The image is not valid base64 (nor a data: or http(s) URL)');
  }
  if (Math.floor((compact.length * 3) / 4) > MAX_IMAGE_BYTES + 2) {
    throw new ToolInputError(`The image is over the limit of ${MAX_IMAGE_BYTES} bytes`);
  }
  return Buffer.from(compact, 'base64');
}

function decodeDataUrl(value: string): Buffer {
  const match = /^data:([^,]*?),(.*)$/is.exec(value);
  if (!match) throw new ToolInputError('Malformed data: URL');
  const [, header = '', payload = ''] = match;
  if (/;base64$/i.test(header)) return decodeBase64(payload);
  const bytes = Buffer.from(decodeURIComponent(payload), 'utf8');
  if (bytes.length > MAX_IMAGE_BYTES)
    throw new ToolInputError(`The image is over the limit of ${MAX_IMAGE_BYTES} bytes`);
  return bytes;
}

async function probe(buffer: Buffer): Promise<{ format: string; width: number; height: number }> {
  if (buffer.length > MAX_IMAGE_BYTES) {
    throw new ToolInputError(
      `The image is ${buffer.length} bytes, over the limit of ${MAX_IMAGE_BYTES} bytes`,
    );
  }
  let meta: Metadata;
  try {
    meta = await sharp(buffer, sharpInput).metadata();
  } catch (error) {
    const message = (error as Error).message;
    if (/pixel limit/i.test(message))
      throw new ToolInputError(`The image is over the limit of ${MAX_PIXELS} pixels`);
    throw new ToolInputError(`Not a supported image: ${message}`);
  }
  const { format, width, height } = meta;
  if (!format || !width || !height)
    throw new ToolInputError('Not a supported image: no format or size found');
  checkPixels(width, height);
  return { format, width, height };
}

function checkPixels(width: number, height: number): void {
  if (width * height > MAX_PIXELS) {
    throw new ToolInputError(`The image is ${width}×${height}, over the limit of ${MAX_PIXELS} pixels`);
  }
}

/** Runs a sharp pipeline, turning sharp's own errors (corrupt data, limits) into tool input errors. */
async function run<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof ToolInputError) throw error;
    throw new ToolInputError(`Image processing failed: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Analysis

export const colourSchema = z.object({
  r: z.number().int(),
  g: z.number().int(),
  b: z.number().int(),
  hex: z.string(),
});
type Colour = z.infer<typeof colourSchema>;

function colour(r: number, g: number, b: number): Colour {
  const [R, G, B] = [r, g, b].map((v) => Math.max(0, Math.min(255, Math.round(v)))) as [
    number,
    number,
    number,
  ];
  return { r: R, g: G, b: B, hex: `#${[R, G, B].map((v) => v.toString(16).padStart(2, '0')).join('')}` };
}

export const imageInfoSchema = z.object({
  source: z.string(),
  format: z.string(),
  mimeType: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  bytes: z.number().int(),
  channels: z.number().int(),
  space: z.string().nullable(),
  hasAlpha: z.boolean(),
  isOpaque: z.boolean(),
  pages: z.number().int(),
  dominant: colourSchema,
  mean: colourSchema,
  entropy: z.number(),
  sharpness: z.number(),
  /** The image itself, base64, so that a following step (optimize_compression, apply_effects) takes it. */
  image: z.string(),
});
export type ImageInfo = z.infer<typeof imageInfoSchema>;

export async function analyzeImage(image: LoadedImage): Promise<ImageInfo> {
  return run(async () => {
    const [meta, stats] = await Promise.all([
      sharp(image.buffer, sharpInput).metadata(),
      sharp(image.buffer, sharpInput).stats(),
    ]);
    // Greyscale images have one colour channel; repeat it so the mean is still an RGB colour.
    const means = stats.channels.map((c) => c.mean);
    const [r = 0, g = r, b = r] = meta.hasAlpha ? means.slice(0, -1) : means;
    return {
      source: image.source,
      format: image.format,
      mimeType: mimeTypeOf(image.format),
      width: image.width,
      height: image.height,
      bytes: image.buffer.length,
      channels: meta.channels ?? stats.channels.length,
      space: meta.space ?? null,
      hasAlpha: meta.hasAlpha ?? false,
      isOpaque: stats.isOpaque,
      pages: meta.pages ?? 1,
      dominant: colour(stats.dominant.r, stats.dominant.g, stats.dominant.b),
      mean: colour(r, g, b),
      entropy: round(stats.entropy, 4),
      sharpness: round(stats.sharpness, 4),
      image: image.buffer.toString('base64'),
    };
  });
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ---------------------------------------------------------------------------------------------------
// Encoding

export interface Encoded {
  buffer: Buffer;
  format: string;
  width: number;
  height: number;
}

function encode(pipeline: Sharp, format: EffectOutputFormat, quality: number): Sharp {
  switch (format) {
    case 'webp':
      return pipeline.webp({ quality, effort: 4 });
    case 'avif':
      return pipeline.avif({ quality, effort: 4 });
    case 'jpeg':
      return pipeline.jpeg({ quality, mozjpeg: true });
    case 'png':
      // Below 100, quantise to a palette: that is where PNG savings come from.
      return pipeline.png({ compressionLevel: 9, palette: quality < 100, quality, effort: 7 });
    case 'gif':
      return pipeline.gif({ effort: 7 });
    case 'tiff':
      return pipeline.tiff({ quality, compression: 'lzw' });
  }
}

async function output(pipeline: Sharp, format: EffectOutputFormat): Promise<Encoded> {
  const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
  if (data.length > MAX_IMAGE_BYTES) {
    throw new ToolInputError(
      `The result is ${data.length} bytes, over the limit of ${MAX_IMAGE_BYTES} bytes`,
    );
  }
  // sharp reports AVIF output as "heif": name the format that was asked for.
  return { buffer: data, format, width: info.width, height: info.height };
}

export const compressionSchema = z.object({
  source: z.string(),
  sourceFormat: z.string(),
  format: z.string(),
  mimeType: z.string(),
  quality: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  bytesBefore: z.number().int(),
  bytesAfter: z.number().int(),
  /** Negative when the new encoding is larger. */
  bytesSaved: z.number().int(),
  /** bytesAfter / bytesBefore. */
  ratio: z.number(),
  savedPercent: z.number(),
  image: z.string(),
});
export type Compression = z.infer<typeof compressionSchema>;

export async function optimizeCompression(
  image: LoadedImage,
  format: OutputFormat,
  quality: number,
): Promise<{ result: Compression; encoded: Encoded }> {
  const encoded = await run(() =>
    output(encode(sharp(image.buffer, sharpInput).autoOrient(), format, quality), format),
  );
  const before = image.buffer.length;
  const after = encoded.buffer.length;
  return {
    encoded,
    result: {
      source: image.source,
      sourceFormat: image.format,
      format: encoded.format,
      mimeType: mimeTypeOf(encoded.format),
      quality,
      width: encoded.width,
      height: encoded.height,
      bytesBefore: before,
      bytesAfter: after,
      bytesSaved: before - after,
      ratio: round(after / before, 4),
      savedPercent: round(((before - after) / before) * 100, 2),
      image: encoded.buffer.toString('base64'),
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Effects

const dimension = z.number().int().min(1).max(MAX_DIMENSION);
const channel = z.number().int().min(0).max(255);

export const effectObjectSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('resize'),
    width: dimension.optional(),
    height: dimension.optional(),
    fit: z.enum(['cover', 'contain', 'fill', 'inside', 'outside']).optional(),
  }),
  z.object({ type: z.literal('greyscale') }),
  z.object({ type: z.literal('grayscale') }),
  z.object({ type: z.literal('blur'), sigma: z.number().min(0.3).max(100).optional() }),
  z.object({ type: z.literal('rotate'), angle: z.number().min(-360).max(360).optional() }),
  z.object({ type: z.literal('sharpen'), sigma: z.number().min(0.01).max(10).optional() }),
  z.object({ type: z.literal('flip') }),
  z.object({ type: z.literal('flop') }),
  z.object({ type: z.literal('negate') }),
  z.object({ type: z.literal('normalize') }),
  z.object({ type: z.literal('tint'), r: channel, g: channel, b: channel }),
]);
export type Effect = z.infer<typeof effectObjectSchema>;

export const effectSchema = z
  .union([z.string().min(1).max(100), effectObjectSchema])
  .describe(
    'An effect: an object { type, ...options } or a string: greyscale, sharpen, flip, flop, negate, normalize, ' +
      'blur[:sigma], rotate[:angle], resize:WxH (or resize:W, resize:xH), tint:#rrggbb',
  );

/** Reads the string shorthand of an effect ("blur:3", "resize:64x48", "tint:#ff0000"). */
export function parseEffect(spec: string | Effect): Effect {
  if (typeof spec !== 'string') return spec;
  const [rawName = '', arg] = spec.trim().toLowerCase().split(/:(.*)/s, 2);
  const name = rawName.trim();
  const fail = (why: string): never => {
    throw new ToolInputError(`Effect ${JSON.stringify(spec)}: ${why}`);
  };
  const number = (text: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) fail(`${JSON.stringify(text)} is not a number`);
    return value;
  };
  let effect: unknown;
  switch (name) {
    case 'greyscale':
    case 'grayscale':
    case 'sharpen':
    case 'flip':
    case 'flop':
    case 'negate':
    case 'normalize':
      effect = { type: name };
      break;
    case 'blur':
      effect = { type: 'blur', ...(arg ? { sigma: number(arg) } : {}) };
      break;
    case 'rotate':
      effect = { type: 'rotate', ...(arg ? { angle: number(arg) } : {}) };
      break;
    case 'resize': {
      const m = /^\s*(\d+)?\s*(?:x\s*(\d+))?\s*$/.exec(arg ?? '');
      if (!m || (!m[1] && !m[2])) fail('use resize:WIDTHxHEIGHT, resize:WIDTH or resize:xHEIGHT');
      effect = {
        type: 'resize',
        ...(m?.[1] ? { width: Number(m[1]) } : {}),
        ...(m?.[2] ? { height: Number(m[2]) } : {}),
      };
      break;
    }
    case 'tint': {
      const hex = /^\s*#?([0-9a-f]{6})\s*$/.exec(arg ?? '');
      const rgb = /^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$/.exec(arg ?? '');
      if (hex?.[1]) {
        const n = Number.parseInt(hex[1], 16);
        effect = { type: 'tint', r: n >> 16, g: (n >> 8) & 255, b: n & 255 };
      } else if (rgb) effect = { type: 'tint', r: Number(rgb[1]), g: Number(rgb[2]), b: Number(rgb[3]) };
      else fail('use tint:#rrggbb or tint:r,g,b');
      break;
    }
    default:
      fail(
        'unknown effect; known: resize, greyscale, blur, rotate, sharpen, flip, flop, negate, normalize, tint',
      );
  }
  const parsed = effectObjectSchema.safeParse(effect);
  if (!parsed.success) fail(parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; '));
  return parsed.data as Effect;
}

export function describeEffect(effect: Effect): string {
  const { type, ...options } = effect;
  const entries = Object.entries(options);
  return entries.length ? `${type}(${entries.map(([k, v]) => `${k}=${v}`).join(', ')})` : type;
}

interface Raw {
  data: Buffer;
  info: OutputInfo;
}

function fromRaw(raw: Raw): Sharp {
  const { width, height, channels } = raw.info;
  return sharp(raw.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } });
}

function applyOne(pipeline: Sharp, effect: Effect, size: { width: number; height: number }): Sharp {
  switch (effect.type) {
    case 'resize': {
      if (effect.width === undefined && effect.height === undefined) {
        throw new ToolInputError('resize needs a width, a height, or both');
      }
      // Fixing one side keeps the aspect ratio: check the output size before sharp allocates it.
      const width = effect.width ?? Math.round((size.width * (effect.height as number)) / size.height);
      const height = effect.height ?? Math.round((size.height * (effect.width as number)) / size.width);
      if (width > MAX_DIMENSION || height > MAX_DIMENSION) {
        throw new ToolInputError(
          `resize to ${width}×${height} is over the limit of ${MAX_DIMENSION} per side`,
        );
      }
      checkPixels(width, height);
      return pipeline.resize({ width: effect.width, height: effect.height, fit: effect.fit ?? 'cover' });
    }
    case 'greyscale':
    case 'grayscale':
      return pipeline.greyscale();
    case 'blur':
      return pipeline.blur(effect.sigma ?? 2);
    case 'rotate':
      return pipeline.rotate(effect.angle ?? 90, { background: { r: 0, g: 0, b: 0, alpha: 0 } });
    case 'sharpen':
      return effect.sigma === undefined ? pipeline.sharpen() : pipeline.sharpen({ sigma: effect.sigma });
    case 'flip':
      return pipeline.flip();
    case 'flop':
      return pipeline.flop();
    case 'negate':
      return pipeline.negate({ alpha: false });
    case 'normalize':
      return pipeline.normalize();
    case 'tint':
      return pipeline.tint({ r: effect.r, g: effect.g, b: effect.b });
  }
}

export const effectsResultSchema = z.object({
  source: z.string(),
  sourceFormat: z.string(),
  applied: z.array(z.string()),
  format: z.string(),
  mimeType: z.string(),
  quality: z.number().int(),
  widthBefore: z.number().int(),
  heightBefore: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  bytesBefore: z.number().int(),
  bytes: z.number().int(),
  image: z.string(),
});
export type EffectsResult = z.infer<typeof effectsResultSchema>;

/**
 * Applies effects in the order given. sharp orders the operations of one pipeline itself (and a second
 * resize replaces the first), so each effect runs as its own pipeline over raw pixels: the order is the
 * caller's and nothing is re-encoded lossily in between.
 */
export async function applyEffects(
  image: LoadedImage,
  effects: readonly Effect[],
  format: EffectOutputFormat,
  quality: number,
  signal: AbortSignal,
): Promise<{ result: EffectsResult; encoded: Encoded }> {
  return run(async () => {
    let raw: Raw = await sharp(image.buffer, sharpInput)
      .autoOrient()
      .raw()
      .toBuffer({ resolveWithObject: true });
    for (const effect of effects) {
      signal.throwIfAborted();
      raw = await applyOne(fromRaw(raw), effect, raw.info).raw().toBuffer({ resolveWithObject: true });
      checkPixels(raw.info.width, raw.info.height);
    }
    const encoded = await output(encode(fromRaw(raw), format, quality), format);
    return {
      encoded,
      result: {
        source: image.source,
        sourceFormat: image.format,
        applied: effects.map(describeEffect),
        format: encoded.format,
        mimeType: mimeTypeOf(encoded.format),
        quality,
        widthBefore: image.width,
        heightBefore: image.height,
        width: encoded.width,
        height: encoded.height,
        bytesBefore: image.buffer.length,
        bytes: encoded.buffer.length,
        image: encoded.buffer.toString('base64'),
      },
    };
  });
}

/** The format apply_effects writes by default: the source's, when it can be written. */
export function defaultEffectFormat(sourceFormat: string): EffectOutputFormat {
  return (EFFECT_OUTPUT_FORMATS as readonly string[]).includes(sourceFormat)
    ? (sourceFormat as EffectOutputFormat)
    : 'png';
}
