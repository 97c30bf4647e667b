import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      databaseUrl: undefined,
      dataDir: path.resolve('./data'),
      redisUrl: undefined,
      seedExamples: true,
      eventRetentionDays: 30,
      streamRatePerSecond: 5_000,
      logLevel: 'info',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.allowedOrigins)).toBe(true);
  });

  it('parses every variable', () => {
    const c = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgres://u@h/db',
      SWITCHBOARD_DATA_DIR: '/tmp/sb',
      REDIS_URL: 'redis://127.0.0.1:6379',
      SWITCHBOARD_API_TOKEN: 'a-long-enough-token',
      SWITCHBOARD_ALLOWED_ORIGINS: 'http://a.test, http://b.test',
      SWITCHBOARD_STDIO_ALLOW: 'node,npx',
      SWITCHBOARD_EVENT_RETENTION_DAYS: '7',
      SWITCHBOARD_SEED_EXAMPLES: 'false',
      SWITCHBOARD_STREAM_RATE_PER_SECOND: '20000',
      LOG_LEVEL: 'debug',
    });
    expect(c).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      databaseUrl: 'postgres://u@h/db',
      dataDir: '/tmp/sb',
      redisUrl: 'redis://127.0.0.1:6379',
      apiToken: 'a-long-enough-token',
      allowedOrigins: ['http://a.test', 'http://b.test'],
      stdioAllow: ['node', 'npx'],
      eventRetentionDays: 7,
      seedExamples: false,
      streamRatePerSecond: 20_000,
      logLevel: 'debug',
    });
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({ port: 3000, databaseUrl: undefined });
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    ['SWITCHBOARD_API_TOKEN', 'short'],
    ['SWITCHBOARD_SEED_EXAMPLES', 'maybe'],
    ['SWITCHBOARD_EVENT_RETENTION_DAYS', '0'],
    ['LOG_LEVEL', 'loud'],
  ])('names the variable when %s=%s is bad', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}:`));
  });
});
