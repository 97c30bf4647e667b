import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImage, MAX_IMAGE_BYTES, MAX_IMAGE_CHARS } from '../../examples/servers/image-ops.js';
import { STDIO_MAX_MESSAGE_BYTES } from '../../examples/servers/stdio-server.js';
import {
  connectExample,
  type ExampleConnection,
  exitAfterStdinEnds,
  type FixtureServer,
  resultText,
  serveFixtures,
  structured,
} from '../helpers/example-servers.js';

type Colour = { r: number; g: number; b: number; hex: string };
type ImageInfo = {
  source: string;
  format: string;
  mimeType: string;
  width: number;
  height: number;
  bytes: number;
  hasAlpha: boolean;
  isOpaque: boolean;
  dominant: Colour;
  mean: Colour;
  image: string;
};
type Compression = {
  format: string;
  mimeType: string;
  quality: number;
  width: number;
  height: number;
  bytesBefore: number;
  bytesAfter: number;
  bytesSaved: number;
  ratio: number;
  savedPercent: number;
  image: string;
};
type Effects = {
  applied: string[];
  format: string;
  width: number;
  height: number;
  widthBefore: number;
  heightBefore: number;
  bytes: number;
  image: string;
};
type Batch = {
  results: {
    index: number;
    source: string;
    ok: boolean;
    error: string | null;
    bytesAfter?: number;
    image: string | null;
  }[];
  count: number;
  succeeded: number;
  failed: number;
  totalBytesBefore: number;
  totalBytesAfter: number;
  totalBytesSaved: number;
};

const RED = { r: 200, g: 40, b: 40 };

/** A 64×48 opaque PNG of one colour. */
async function solidPng(colour = RED, width = 64, height = 48): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: colour } })
    .png()
    .toBuffer();
}

/** A 256×256 PNG with smooth gradients: photo-like enough that lossy formats save a lot. */
async function gradientPng(): Promise<Buffer> {
  const size = 256;
  const pixels = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      pixels[i] = x;
      pixels[i + 1] = y;
      pixels[i + 2] = (x * y) % 256;
    }
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

/** The top half white, the bottom half black: flip and rotate are visible in one pixel. */
async function halvesPng(): Promise<Buffer> {
  const white = await sharp({ create: { width: 40, height: 10, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  return sharp({ create: { width: 40, height: 20, channels: 3, background: '#000000' } })
    .composite([{ input: white, top: 0, left: 0 }])
    .png()
    .toBuffer();
}

async function pixel(image: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [...data.subarray(i, i + info.channels)];
}

let graphics: ExampleConnection;
let fixtures: FixtureServer;
let red: Buffer;
let gradient: Buffer;

async function call<T>(name: string, args: Record<string, unknown>, connection = graphics): Promise<T> {
  return structured<T>(await connection.client.callTool({ name, arguments: args }));
}

beforeAll(async () => {
  red = await solidPng();
  gradient = await gradientPng();
  fixtures = await serveFixtures({
    '/red.png': { body: red, type: 'image/png' },
    '/gradient.png': { body: gradient, type: 'image/png' },
    '/page.html': { body: '<html>not an image</html>' },
  });
  graphics = await connectExample('graphics');
});

afterAll(async () => {
  await graphics?.close();
  await fixtures?.close();
});

describe('graphics server: protocol', () => {
  it('negotiates 2026-07-28 with an auto client and 2025-11-25 with a legacy one', async () => {
    expect(graphics.client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
    const legacy = await connectExample('graphics', { era: 'legacy' });
    try {
      expect(legacy.client.getNegotiatedProtocolVersion()).toBe('2025-11-25');
      const info = await call<ImageInfo>('analyze_image', { image: red.toString('base64') }, legacy);
      expect(info).toMatchObject({ width: 64, height: 48 });
    } finally {
      await legacy.close();
    }
  });

  it('exits by itself, with code 0, when the client closes its stdin', async () => {
    const exit = await exitAfterStdinEnds('graphics');
    expect(exit).toMatchObject({ code: 0, signal: null });
  });

  it('lists the four tools; the single-image tools require `image` so bundles can fill it', async () => {
    const { tools } = await graphics.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      'analyze_image',
      'apply_effects',
      'optimize_compression',
      'optimize_images',
    ]);
    const schema = (name: string) => tools.find((t) => t.name === name)?.inputSchema;
    expect(schema('optimize_compression')?.required).toEqual(['image']);
    expect(schema('apply_effects')?.required).toEqual(['image', 'effects']);
    expect(schema('analyze_image')?.properties).toHaveProperty('imageUrl');
  });
});

describe('analyze_image', () => {
  it('describes a solid-colour PNG given as base64, and returns it as `image`', async () => {
    const info = await call<ImageInfo>('analyze_image', { image: red.toString('base64') });
    expect(info).toMatchObject({
      source: 'base64',
      format: 'png',
      mimeType: 'image/png',
      width: 64,
      height: 48,
      bytes: red.length,
      hasAlpha: false,
      isOpaque: true,
    });
    expect(info.dominant).toEqual({ ...RED, hex: '#c82828' });
    expect(info.mean).toEqual({ ...RED, hex: '#c82828' });
    expect(Buffer.from(info.image, 'base64').equals(red)).toBe(true);
  });

  it('fetches an imageUrl on 127.0.0.1, and reads data: URLs', async () => {
    const url = fixtures.url('/red.png');
    const fromUrl = await call<ImageInfo>('analyze_image', { imageUrl: url });
    expect(fromUrl).toMatchObject({ source: url, width: 64, height: 48, bytes: red.length });
    const fromDataUrl = await call<ImageInfo>('analyze_image', {
      imageUrl: `data:image/png;base64,${red.toString('base64')}`,
    });
    expect(fromDataUrl).toMatchObject({ source: 'data-url', width: 64, height: 48 });
  });

  it('sees transparency', async () => {
    const translucent = await sharp({
      create: { width: 16, height: 16, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const info = await call<ImageInfo>('analyze_image', { image: translucent.toString('base64') });
    expect(info).toMatchObject({ hasAlpha: true, isOpaque: false });
    expect(info.mean).toMatchObject({ r: 0, g: 0, b: 255 });
  });
});

describe('optimize_compression', () => {
  it('re-encodes a PNG as webp (the default) and reports the bytes saved', async () => {
    const result = await graphics.client.callTool({
      name: 'optimize_compression',
      arguments: { image: gradient.toString('base64') },
    });
    const c = structured<Compression>(result);
    expect(c).toMatchObject({ format: 'webp', mimeType: 'image/webp', quality: 75, width: 256, height: 256 });
    expect(c.bytesBefore).toBe(gradient.length);
    expect(c.bytesAfter).toBeLessThan(c.bytesBefore / 2);
    expect(c.bytesSaved).toBe(c.bytesBefore - c.bytesAfter);
    expect(c.ratio).toBeCloseTo(c.bytesAfter / c.bytesBefore, 3);
    const out = Buffer.from(c.image, 'base64');
    expect(out.length).toBe(c.bytesAfter);
    expect(await sharp(out).metadata()).toMatchObject({ format: 'webp', width: 256, height: 256 });
    // The image is also MCP image content; the JSON text leaves the base64 out.
    const blocks = result.content as { type: string; data?: string; mimeType?: string; text?: string }[];
    expect(blocks.find((b) => b.type === 'image')).toMatchObject({ mimeType: 'image/webp', data: c.image });
    expect(blocks.find((b) => b.type === 'text')?.text).not.toContain(c.image);
  });

  it('writes avif, jpeg and png, and lower quality gives fewer bytes', async () => {
    const image = gradient.toString('base64');
    for (const format of ['avif', 'jpeg', 'png'] as const) {
      const c = await call<Compression>('optimize_compression', { image, format, quality: 50 });
      expect(c.format).toBe(format);
      const meta = await sharp(Buffer.from(c.image, 'base64')).metadata();
      expect(meta.format).toBe(format === 'avif' ? 'heif' : format);
      expect(meta.width).toBe(256);
    }
    const high = await call<Compression>('optimize_compression', { image, format: 'jpeg', quality: 95 });
    const low = await call<Compression>('optimize_compression', { image, format: 'jpeg', quality: 20 });
    expect(low.bytesAfter).toBeLessThan(high.bytesAfter);
  });

  it('takes a URL in `image`', async () => {
    const c = await call<Compression>('optimize_compression', { image: fixtures.url('/gradient.png') });
    expect(c.bytesBefore).toBe(gradient.length);
  });
});

describe('apply_effects', () => {
  it('resizes', async () => {
    const e = await call<Effects>('apply_effects', {
      image: red.toString('base64'),
      effects: [{ type: 'resize', width: 32, height: 24 }],
    });
    expect(e).toMatchObject({ width: 32, height: 24, widthBefore: 64, heightBefore: 48, format: 'png' });
    expect(await sharp(Buffer.from(e.image, 'base64')).metadata()).toMatchObject({ width: 32, height: 24 });
  });

  it('applies effects in the order given', async () => {
    const image = red.toString('base64');
    const rotateThenResize = await call<Effects>('apply_effects', {
      image,
      effects: ['rotate:90', 'resize:20x10'],
    });
    expect([rotateThenResize.width, rotateThenResize.height]).toEqual([20, 10]);
    const twoResizes = await call<Effects>('apply_effects', { image, effects: ['resize:32', 'resize:x12'] });
    expect([twoResizes.width, twoResizes.height]).toEqual([16, 12]);
    expect(twoResizes.applied).toEqual(['resize(width=32)', 'resize(height=12)']);
  });

  it('greyscale, tint, flip, flop and blur change the pixels as they should', async () => {
    const greyed = await call<Effects>('apply_effects', {
      image: red.toString('base64'),
      effects: ['greyscale'],
    });
    const [g] = await pixel(Buffer.from(greyed.image, 'base64'), 5, 5);
    expect(g).toBeGreaterThan(60);
    expect(g).toBeLessThan(110);

    const halves = (await halvesPng()).toString('base64');
    const flipped = Buffer.from(
      (await call<Effects>('apply_effects', { image: halves, effects: ['flip'] })).image,
      'base64',
    );
    expect(await pixel(flipped, 0, 0)).toEqual([0, 0, 0]);
    expect(await pixel(flipped, 0, 19)).toEqual([255, 255, 255]);

    const rotated = await call<Effects>('apply_effects', {
      image: halves,
      effects: [{ type: 'rotate', angle: 90 }],
    });
    expect([rotated.width, rotated.height]).toEqual([20, 40]);
    // Rotated clockwise: the white top half is now on the right.
    expect(await pixel(Buffer.from(rotated.image, 'base64'), 19, 0)).toEqual([255, 255, 255]);

    const blurred = await call<Effects>('apply_effects', {
      image: halves,
      effects: [{ type: 'blur', sigma: 3 }],
    });
    const [edge] = await pixel(Buffer.from(blurred.image, 'base64'), 20, 10);
    expect(edge).toBeGreaterThan(10);
    expect(edge).toBeLessThan(245);

    const grey = (await solidPng({ r: 128, g: 128, b: 128 })).toString('base64');
    const tinted = await call<Effects>('apply_effects', {
      image: grey,
      effects: ['tint:#0000ff'],
      format: 'png',
    });
    const [r, , b] = await pixel(Buffer.from(tinted.image, 'base64'), 1, 1);
    expect(b).toBeGreaterThan(r as number);
  });

  it('writes another format when asked', async () => {
    const e = await call<Effects>('apply_effects', {
      image: red.toString('base64'),
      effects: ['sharpen', 'flop'],
      format: 'jpeg',
      quality: 60,
    });
    expect(e.format).toBe('jpeg');
    expect((await sharp(Buffer.from(e.image, 'base64')).metadata()).format).toBe('jpeg');
  });
});

describe('a bundle chain, arguments filled by name from the previous structured result', () => {
  /** Fills each missing argument the tool declares from the same-named field of the previous result. */
  function fillByName(
    args: Record<string, unknown>,
    previous: Record<string, unknown>,
    names: string[],
  ): Record<string, unknown> {
    const filled = { ...args };
    for (const name of names) if (!(name in filled) && name in previous) filled[name] = previous[name];
    return filled;
  }

  it('analyze_image {imageUrl} → optimize_compression {} → apply_effects {effects}', async () => {
    const { tools } = await graphics.client.listTools();
    const required = (name: string) =>
      (tools.find((t) => t.name === name)?.inputSchema.required ?? []) as string[];

    const analysed = await call<ImageInfo>('analyze_image', { imageUrl: fixtures.url('/gradient.png') });
    const optimised = await call<Compression>(
      'optimize_compression',
      fillByName({}, analysed, required('optimize_compression')),
    );
    expect(optimised).toMatchObject({ format: 'webp', bytesBefore: gradient.length, width: 256 });
    const effected = await call<Effects>(
      'apply_effects',
      fillByName({ effects: ['greyscale', 'resize:64x64'] }, optimised, required('apply_effects')),
    );
    // apply_effects keeps the format of the image it is given: the optimised webp.
    expect(effected).toMatchObject({ width: 64, height: 64, widthBefore: 256, format: 'webp' });
    expect((await sharp(Buffer.from(effected.image, 'base64')).metadata()).format).toBe('webp');
  });
});

describe('optimize_images', () => {
  it('optimises a list, one progress notification per image, and reports failures per image', async () => {
    const progress: { progress: number; total?: number; message?: string }[] = [];
    const result = await graphics.client.callTool(
      {
        name: 'optimize_images',
        arguments: {
          images: [gradient.toString('base64'), 'bm90IGFuIGltYWdl'],
          imageUrls: [fixtures.url('/gradient.png'), fixtures.url('/missing.png')],
          format: 'webp',
        },
      },
      { onprogress: (p) => progress.push(p) },
    );
    const batch = structured<Batch>(result);
    expect(batch).toMatchObject({ count: 4, succeeded: 2, failed: 2 });
    expect(batch.results.map((r) => r.ok)).toEqual([true, false, true, false]);
    expect(batch.results[1]?.error).toMatch(/Not a supported image/);
    expect(batch.results[3]?.error).toMatch(/HTTP 404/);
    expect(batch.results[2]?.source).toBe(fixtures.url('/gradient.png'));
    expect(batch.totalBytesBefore).toBe(2 * gradient.length);
    expect(batch.totalBytesSaved).toBe(batch.totalBytesBefore - batch.totalBytesAfter);
    expect(batch.totalBytesSaved).toBeGreaterThan(0);
    expect(progress.map((p) => p.progress)).toEqual([1, 2, 3, 4]);
    expect(progress.every((p) => p.total === 4)).toBe(true);
    expect(progress.some((p) => p.message?.includes(fixtures.url('/gradient.png')))).toBe(true);
    const images = (result.content as { type: string }[]).filter((b) => b.type === 'image');
    expect(images).toHaveLength(2);
  });
});

describe('bad input gives tool errors, and the server keeps serving', () => {
  const cases: [string, string, () => Promise<Record<string, unknown>>, RegExp][] = [
    ['no image', 'analyze_image', async () => ({}), /Give the image/],
    ['not base64', 'analyze_image', async () => ({ image: '***' }), /not valid base64/],
    ['not an image', 'analyze_image', async () => ({ image: 'bm90IGFuIGltYWdl' }), /Not a supported image/],
    [
      'imageUrl not http',
      'analyze_image',
      async () => ({ imageUrl: 'file:///etc/passwd' }),
      /http\(s\) or data: URL/,
    ],
    [
      'imageUrl is a page',
      'analyze_image',
      async () => ({ imageUrl: fixtures.url('/page.html') }),
      /Not a supported image/,
    ],
    ['imageUrl 404', 'analyze_image', async () => ({ imageUrl: fixtures.url('/nope.png') }), /HTTP 404/],
    [
      'too many pixels',
      'analyze_image',
      async () => ({ image: (await solidPng(RED, 8000, 6000)).toString('base64') }),
      /over the limit of 40000000 pixels/,
    ],
    // Over the SDK's default 10 MB stdio message limit, which would close the connection: the server raises it.
    [
      'a 12 MB message',
      'optimize_compression',
      async () => ({ image: Buffer.alloc(9_000_000, 7).toString('base64') }),
      /Not a supported image/,
    ],
    ['missing image', 'optimize_compression', async () => ({ format: 'webp' }), /Input validation error/],
    [
      'unknown format',
      'optimize_compression',
      async () => ({ image: red.toString('base64'), format: 'bmp' }),
      /format/,
    ],
    [
      'quality 0',
      'optimize_compression',
      async () => ({ image: red.toString('base64'), quality: 0 }),
      /quality/,
    ],
    [
      'unknown effect',
      'apply_effects',
      async () => ({ image: red.toString('base64'), effects: ['explode'] }),
      /unknown effect/,
    ],
    [
      'bad resize',
      'apply_effects',
      async () => ({ image: red.toString('base64'), effects: ['resize:big'] }),
      /resize:WIDTHxHEIGHT/,
    ],
    [
      'resize too large',
      'apply_effects',
      async () => ({
        image: red.toString('base64'),
        effects: [{ type: 'resize', width: 9000, height: 9000 }],
      }),
      /over the limit of 40000000 pixels/,
    ],
    [
      'blur sigma out of range',
      'apply_effects',
      async () => ({ image: red.toString('base64'), effects: [{ type: 'blur', sigma: 5000 }] }),
      /Input validation error/,
    ],
    ['no images', 'optimize_images', async () => ({}), /Give images/],
  ];
  for (const [label, tool, makeArgs, message] of cases) {
    it(label, async () => {
      const result = await graphics.client.callTool({ name: tool, arguments: await makeArgs() });
      expect(result.isError).toBe(true);
      expect(resultText(result)).toMatch(message);
    });
  }

  it('still answers after the errors', async () => {
    const info = await call<ImageInfo>('analyze_image', { image: red.toString('base64') });
    expect(info.width).toBe(64);
  });
});

describe('size limits (in-process: a 28 MB message over stdio takes seconds in the SDK framing)', () => {
  const signal = new AbortController().signal;

  it('refuses base64 over 20 MB before decoding it', async () => {
    const tooBig = 'A'.repeat(Math.ceil((MAX_IMAGE_BYTES + 10) / 3) * 4);
    await expect(loadImage(tooBig, signal)).rejects.toThrow(`over the limit of ${MAX_IMAGE_BYTES} bytes`);
    await expect(loadImage(`data:image/png;base64,${tooBig}`, signal)).rejects.toThrow(/over the limit/);
  });

  it('refuses a fetched image over 20 MB while reading it', async () => {
    const big = await serveFixtures({
      '/big.png': { body: Buffer.alloc(MAX_IMAGE_BYTES + 1), type: 'image/png' },
    });
    try {
      await expect(loadImage(big.url('/big.png'), signal)).rejects.toThrow(/over the limit/);
    } finally {
      await big.close();
    }
  });

  it('the tool schema refuses strings that cannot hold an image under the limit', async () => {
    const { tools } = await graphics.client.listTools();
    const image = tools.find((t) => t.name === 'optimize_compression')?.inputSchema.properties?.image as {
      maxLength?: number;
    };
    expect(image.maxLength).toBe(MAX_IMAGE_CHARS);
    expect(MAX_IMAGE_CHARS).toBeLessThan(STDIO_MAX_MESSAGE_BYTES);
  });
});
