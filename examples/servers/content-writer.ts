/**
 * The content server's work as a pure function: titles, a meta description, an intro and an outline
 * built from keywords, a topic and optionally an analyze_seo result.
 *
 * Wording comes from templates with alternatives. Every choice point draws from a PRNG seeded by the
 * inputs and `seed` (not by the temperature): with probability `temperature` it takes a seeded
 * alternative, otherwise the first (template) wording. So temperature 0 is the fixed template, the same
 * inputs, temperature and seed always give the same text, and raising the temperature only adds changes.
 * `maxTokens` caps the generated words, spent in document order; the rest is cut.
 */
import * as z from 'zod';

export const DEFAULT_TEMPERATURE = 0.7;
export const DEFAULT_MAX_TOKENS = 2000;
export const MAX_MAX_TOKENS = 100_000;
const META_DESCRIPTION_CHARS = 160;

export const sectionSchema = z.object({
  heading: z.string(),
  points: z.array(z.string()),
  paragraph: z.string(),
});

export const contentSchema = z.object({
  topic: z.string(),
  keywords: z.array(z.string()),
  /** The first title idea: a ready `<title>`/h1. */
  title: z.string(),
  titleIdeas: z.array(z.string()),
  metaDescription: z.string(),
  intro: z.string(),
  outline: z.array(sectionSchema),
  /** What to fix on the analysed page, when an analysis was given. */
  recommendations: z.array(z.string()),
  markdown: z.string(),
  wordCount: z.number().int(),
  truncated: z.boolean(),
  settings: z.object({ temperature: z.number(), max_tokens: z.number().int(), seed: z.number().int() }),
});
export type GeneratedContent = z.infer<typeof contentSchema>;

export interface Finding {
  code: string;
  message?: string;
}

export interface ContentRequest {
  keywords: readonly string[];
  topic: string;
  /** The analysed page's current title, if any. */
  currentTitle: string | null;
  findings: readonly Finding[];
  temperature: number;
  maxTokens: number;
  seed: number;
}

// ---------------------------------------------------------------------------------------------------
// Seeded choices

/** FNV-1a, 32-bit: a stable hash of the inputs to seed the PRNG. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast, and the same on every platform. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Wording {
  private readonly random: () => number;

  constructor(
    seedText: string,
    private readonly temperature: number,
  ) {
    this.random = mulberry32(hash(seedText));
  }

  /** The first alternative, or (with probability `temperature`) a seeded other one. */
  pick<T>(alternatives: readonly T[]): T {
    // Always draw both numbers so that later choices do not shift when the temperature changes.
    const vary = this.random();
    const which = this.random();
    if (alternatives.length < 2 || vary >= this.temperature) return alternatives[0] as T;
    return alternatives[1 + Math.floor(which * (alternatives.length - 1))] as T;
  }
}

// ---------------------------------------------------------------------------------------------------
// Text helpers

const SMALL_WORDS = new Set([
  'a',
  'an',
  'and',
  'as',
  'at',
  'but',
  'by',
  'for',
  'in',
  'of',
  'on',
  'or',
  'the',
  'to',
  'vs',
]);

export function titleCase(text: string): string {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((word, i) =>
      i > 0 && SMALL_WORDS.has(word.toLowerCase())
        ? word.toLowerCase()
        : word.charAt(0).toUpperCase() + word.slice(1),
    )
    .join(' ');
}

function sentenceCase(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (match, key: string) => values[key] ?? match);
}

function listPhrase(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

function words(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}

/** Cuts at a word boundary to fit `limit` characters. */
function clip(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const cut = text.slice(0, limit - 1);
  return `${cut.slice(0, Math.max(cut.lastIndexOf(' '), 1)).replace(/[\s,;:.-]+$/, '')}…`;
}

/** Hands out words until `max` is spent: text past the limit is cut at a word boundary. */
class WordBudget {
  private left: number;
  truncated = false;

  constructor(readonly max: number) {
    this.left = max;
  }

  get used(): number {
    return this.max - this.left;
  }

  take(text: string): string {
    const all = words(text);
    if (all.length <= this.left) {
      this.left -= all.length;
      return text;
    }
    this.truncated = true;
    const kept = all.slice(0, this.left);
    this.left = 0;
    return kept.length ? `${kept.join(' ').replace(/[,;:]$/, '')}…` : '';
  }
}

// ---------------------------------------------------------------------------------------------------
// Templates

const TITLE_SLOTS: readonly (readonly string[])[] = [
  [
    '{Topic}: A Complete Guide',
    'The Complete Guide to {Topic}',
    '{Topic} Explained: Everything You Need to Know',
    'Mastering {Topic}: The Definitive Guide',
  ],
  [
    '7 {Kw} Tips That Actually Work',
    '10 Proven Ways to Improve Your {Kw}',
    '5 {Kw} Mistakes to Avoid',
    '9 {Kw} Ideas You Can Use Today',
  ],
  [
    'How to Get Started with {Topic}',
    "A Beginner's Guide to {Topic}",
    'Getting {Topic} Right: A Step-by-Step Guide',
    '{Topic} for Beginners: Where to Start',
  ],
  [
    'Why {Topic} Matters (and How to Do It Well)',
    '{Topic}: What Works in Practice',
    'The Case for {Topic}',
    '{Topic}, Done Right',
  ],
  [
    '{Topic} Best Practices',
    '{Topic}: Best Practices and Common Pitfalls',
    'The {Topic} Checklist',
    '{Topic} in 10 Minutes',
  ],
];
const COMPARISON_TITLES = [
  '{Kw} vs {Kw2}: What You Need to Know',
  '{Kw} or {Kw2}? How to Choose',
  'Comparing {Kw} and {Kw2}',
];

const META_TEMPLATES = [
  'Learn about {topic}: {kwList}. A practical guide with examples, tips and common mistakes to avoid.',
  'Everything you need to know about {topic}, from {kw} to {kwLast}, with practical tips and examples.',
  'A clear, practical guide to {topic}. Covers {kwList}, with advice you can apply today.',
  'Get {topic} right: what {kw} means, why it matters and how to improve it, step by step.',
];

const INTRO_SENTENCES: readonly (readonly string[])[] = [
  [
    '{topic} is one of those subjects that looks simple until you try to get it right.',
    'Getting {topic} right can make a real difference, yet it is often overlooked.',
    'Few things pay off as steadily as a good grasp of {topic}.',
    'If you have ever wondered how {topic} really works, you are not alone.',
  ],
  [
    'This guide covers {kwList}, and shows how they fit together.',
    'Below we walk through {kwList}, one step at a time.',
    'We look at {kwList}, with examples along the way.',
    'You will find practical advice on {kwList}.',
  ],
  [
    'Each section ends with points you can act on straight away.',
    'By the end you will know what to do first and what to avoid.',
    'Use it as a checklist, or read it from start to finish.',
    'Skim the headings, or read it in order: each part stands on its own.',
  ],
];

const OVERVIEW_HEADINGS = [
  'What Is {Topic}?',
  'Understanding {Topic}',
  '{Topic} at a Glance',
  'The Basics of {Topic}',
];
const KEYWORD_HEADINGS = [
  'Why {Kw} Matters',
  'Getting {Kw} Right',
  'A Closer Look at {Kw}',
  '{Kw}: What to Know',
];
const PRACTICE_HEADINGS = [
  'Best Practices for {Topic}',
  'Putting {Topic} into Practice',
  '{Topic}: A Practical Checklist',
];
const FAQ_HEADINGS = ['Frequently Asked Questions', 'Common Questions About {Topic}', '{Topic} FAQ'];
const CLOSING_HEADINGS = ['Conclusion', 'Key Takeaways', 'Wrapping Up', 'Next Steps'];

const KEYWORD_POINTS: readonly (readonly string[])[] = [
  ['What {kw} means for {topic}', 'How {kw} relates to {topic}', 'Where {kw} fits in {topic}'],
  ['Common mistakes with {kw}', 'Pitfalls to avoid with {kw}', 'What usually goes wrong with {kw}'],
  ['A worked example of {kw}', 'Practical examples of {kw}', '{kw} in a real project'],
];
const KEYWORD_PARAGRAPHS: readonly (readonly string[])[] = [
  [
    '{kw} is a core part of {topic}.',
    'No discussion of {topic} is complete without {kw}.',
    '{kw} shapes much of what makes {topic} work.',
  ],
  [
    'Start by checking how {kw} is handled today, then fix the biggest gap first.',
    'Measure where you stand on {kw} before changing anything, so you can see what helped.',
    'Small, steady improvements to {kw} beat one big rewrite.',
  ],
  [
    'Keep it simple and consistent, and revisit it as things change.',
    'Document what you decide, so the next person does not start from scratch.',
    'Review it regularly: what worked last year may not work now.',
  ],
];

// ---------------------------------------------------------------------------------------------------
// Generation

const RECOMMENDATIONS: Record<string, string> = {
  'missing-title': 'Add a <title>; for example “{title}”.',
  'title-too-short': 'Lengthen the title to 30–60 characters; for example “{title}”.',
  'title-too-long': 'Shorten the title to under 60 characters; for example “{title}”.',
  'missing-meta-description': 'Add a meta description; the one generated here is {metaLength} characters.',
  'meta-description-too-short':
    'Lengthen the meta description; the one generated here is {metaLength} characters.',
  'meta-description-too-long':
    'Shorten the meta description; the one generated here is {metaLength} characters.',
  'missing-h1': 'Give the page one <h1>, such as “{title}”.',
  'multiple-h1': 'Keep a single <h1> (“{title}”) and turn the others into <h2>.',
  'thin-content': 'Expand the page past 300 words; the outline below has {sections} sections to fill.',
  'images-missing-alt': 'Describe each image in its alt attribute, using “{kw}” where it fits.',
};

export function generateContent(request: ContentRequest): GeneratedContent {
  const keywords = request.keywords.length ? [...request.keywords] : [request.topic.toLowerCase()];
  const topic = request.topic;
  const values: Record<string, string> = {
    topic,
    Topic: titleCase(topic),
    kw: keywords[0] as string,
    Kw: titleCase(keywords[0] as string),
    Kw2: titleCase(keywords[1] ?? ''),
    kwLast: keywords.at(-1) as string,
    kwList: listPhrase(keywords.slice(0, 4)),
  };
  const wording = new Wording(
    JSON.stringify([
      keywords,
      topic,
      request.currentTitle,
      request.findings.map((f) => f.code),
      request.seed,
    ]),
    request.temperature,
  );
  const budget = new WordBudget(request.maxTokens);

  const ideas = TITLE_SLOTS.map((slot, i) =>
    fill(wording.pick(i === 3 && keywords.length > 1 ? COMPARISON_TITLES : slot), values),
  );
  const metaDescription = clip(fill(wording.pick(META_TEMPLATES), values), META_DESCRIPTION_CHARS);
  const intro = INTRO_SENTENCES.map((slot) => sentenceCase(fill(wording.pick(slot), values))).join(' ');

  const sections: { heading: string; points: string[]; paragraph: string }[] = [];
  sections.push({
    heading: fill(wording.pick(OVERVIEW_HEADINGS), values),
    points: [
      fill(wording.pick(['What {topic} is, in one paragraph', 'A short definition of {topic}']), values),
      fill(wording.pick(['Who {topic} is for', 'When {topic} matters most']), values),
    ],
    paragraph: `${sentenceCase(fill(wording.pick(['{topic} brings together {kwList}.', 'At its heart, {topic} is about {kwList}.']), values))} ${fill(wording.pick(['The sections below take each in turn.', 'We cover each of them below.']), values)}`,
  });
  for (const keyword of keywords.slice(0, 5)) {
    const kwValues = { ...values, kw: keyword, Kw: titleCase(keyword) };
    sections.push({
      heading: fill(wording.pick(KEYWORD_HEADINGS), kwValues),
      points: KEYWORD_POINTS.map((slot) => sentenceCase(fill(wording.pick(slot), kwValues))),
      paragraph: KEYWORD_PARAGRAPHS.map((slot) => sentenceCase(fill(wording.pick(slot), kwValues))).join(' '),
    });
  }
  sections.push({
    heading: fill(wording.pick(PRACTICE_HEADINGS), values),
    points: keywords
      .slice(0, 3)
      .map((k) => fill(wording.pick(['Review {k} first', 'Set a goal for {k}']), { k })),
    paragraph: fill(
      wording.pick([
        'Pick one area, improve it, measure the result, and move on to the next.',
        'Work through the list in order, and measure before and after each change.',
      ]),
      values,
    ),
  });
  sections.push({
    heading: fill(wording.pick(FAQ_HEADINGS), values),
    points: keywords
      .slice(0, 3)
      .map((k) => sentenceCase(fill(wording.pick(['What is {k}?', 'How does {k} work?']), { k }))),
    paragraph: fill(
      wording.pick([
        'Short answers to the questions readers ask most.',
        'Quick answers to common questions.',
      ]),
      values,
    ),
  });
  sections.push({
    heading: fill(wording.pick(CLOSING_HEADINGS), values),
    points: [fill(wording.pick(['Summarise the main points on {topic}', 'Recap what matters most']), values)],
    paragraph: sentenceCase(
      fill(
        wording.pick([
          '{topic} rewards steady attention. Start with {kw}, keep what works, and build from there.',
          'There is no single trick to {topic}: start with {kw} and improve a little at a time.',
        ]),
        values,
      ),
    ),
  });

  const recommendationValues = {
    ...values,
    title: ideas[0] as string,
    metaLength: String(metaDescription.length),
    sections: String(sections.length),
  };
  const recommendations = [
    ...new Set(
      request.findings.map((f) =>
        RECOMMENDATIONS[f.code]
          ? fill(RECOMMENDATIONS[f.code] as string, recommendationValues)
          : `Fix: ${f.message ?? f.code}`,
      ),
    ),
  ];

  // Spend the word budget in document order.
  const titleIdeas = ideas.map((t) => budget.take(t)).filter(Boolean);
  const keptMeta = budget.take(metaDescription);
  const keptIntro = budget.take(intro);
  const outline: GeneratedContent['outline'] = [];
  for (const section of sections) {
    const heading = budget.take(section.heading);
    if (!heading) break;
    outline.push({
      heading,
      points: section.points.map((p) => budget.take(p)).filter(Boolean),
      paragraph: budget.take(section.paragraph),
    });
  }
  const keptRecommendations = recommendations.map((r) => budget.take(r)).filter(Boolean);

  const title = titleIdeas[0] ?? '';
  const markdown = [
    title && `# ${title}`,
    keptIntro,
    ...outline.flatMap((s) => [`## ${s.heading}`, s.paragraph, s.points.map((p) => `- ${p}`).join('\n')]),
  ]
    .filter(Boolean)
    .join('\n\n');

  return {
    topic,
    keywords,
    title,
    titleIdeas,
    metaDescription: keptMeta,
    intro: keptIntro,
    outline,
    recommendations: keptRecommendations,
    markdown,
    wordCount: budget.used,
    truncated: budget.truncated,
    settings: { temperature: request.temperature, max_tokens: request.maxTokens, seed: request.seed },
  };
}
